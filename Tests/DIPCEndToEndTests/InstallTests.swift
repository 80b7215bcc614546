import Foundation
import Testing

/// `make install` (PREFIX, DESTDIR) and the man pages, from the built products.
@Suite("make install and man pages")
struct InstallTests {
    static let commands = ["dipc", "dipcrm", "dipc-client"]

    /// Runs `make install ARGS` with this build's products (INSTALL_FROM skips the release build).
    static func install(_ scope: Scope, _ args: [String]) throws -> ProcessResult {
        let bin = (try Binaries.path("dipc") as NSString).deletingLastPathComponent
        var env = scope.env
        env["MAKEFLAGS"] = nil
        env["MAKELEVEL"] = nil
        return try runProcess(
            "/usr/bin/make", ["-C", repositoryRoot, "--no-print-directory", "install", "INSTALL_FROM=\(bin)"] + args,
            env: env, timeout: 120)
    }

    /// What `make install` must have put under `root` (PREFIX, or DESTDIR+PREFIX).
    static func expectInstalled(under root: String) throws {
        let files = FileManager.default
        for command in commands {
            let binary = "\(root)/bin/\(command)"
            #expect(files.isExecutableFile(atPath: binary), "missing \(binary)")
            let help = try runProcess(binary, ["--help"], env: ProcessInfo.processInfo.environment, timeout: 30)
            #expect(help.status == 0 && help.out.contains("USAGE: \(command)"), "\(help)")
            #expect(IPC.fileMode("\(root)/share/man/man1/\(command).1") == 0o644, "man page \(command).1")
            let completions = [
                ("\(root)/share/bash-completion/completions/\(command)", "complete"),
                ("\(root)/share/zsh/site-functions/_\(command)", "#compdef \(command)"),
                ("\(root)/share/fish/vendor_completions.d/\(command).fish", "complete -c '\(command)'"),
            ]
            for (path, marker) in completions {
                let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                #expect(text.contains(marker), "\(path) does not look like a completion script")
            }
            let bash = try runProcess(
                "/bin/bash", ["-n", "\(root)/share/bash-completion/completions/\(command)"], env: [:], timeout: 30)
            #expect(bash.status == 0, "bash completion does not parse: \(bash)")
        }
    }

    @Test("make install PREFIX=DIR installs binaries, man pages and completions", .requires(.make))
    func installPrefix() throws {
        try withScope { scope in
            let prefix = scope.dir + "/prefix"
            let r = try Self.install(scope, ["PREFIX=\(prefix)"])
            #expect(r.status == 0, "\(r)")
            try Self.expectInstalled(under: prefix)
            // The installed dipc-client completes its subcommands, ls included.
            let bash = (try? String(contentsOfFile: "\(prefix)/share/bash-completion/completions/dipc-client", encoding: .utf8)) ?? ""
            #expect(bash.contains("ls") && bash.contains("stats"), "completion lacks subcommands")
        }
    }

    @Test("make install honours DESTDIR", .requires(.make))
    func installDestdir() throws {
        try withScope { scope in
            let destdir = scope.dir + "/stage"
            let r = try Self.install(scope, ["DESTDIR=\(destdir)", "PREFIX=/opt/dipc"])
            #expect(r.status == 0, "\(r)")
            try Self.expectInstalled(under: destdir + "/opt/dipc")
        }
    }

    @Test("man -l renders each page without warnings", .requires(.man), arguments: commands)
    func manPage(command: String) throws {
        var env = ProcessInfo.processInfo.environment
        env["MANWIDTH"] = "80"
        env["MAN_KEEP_FORMATTING"] = nil
        let page = "\(repositoryRoot)/docs/man/\(command).1"
        let r = try runProcess("/usr/bin/man", ["--warnings", "-l", page], env: env, timeout: 60)
        #expect(r.status == 0 && r.err.isEmpty, "\(r)")
        let text = r.out.replacingOccurrences(of: "\u{2010}", with: "-")
        #expect(text.contains("NAME") && text.contains("EXIT STATUS") && text.contains(command), "\(r.out.prefix(300))")
    }
}
