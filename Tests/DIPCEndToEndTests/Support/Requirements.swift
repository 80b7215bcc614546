import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Something a test needs from the machine or the build: a program, root, a backend.
///
/// Used as a trait, `@Test(..., .requires(.man))`. When a requirement is not met the test
/// does not run, and the run says so twice, so that a test that did not run can never be
/// taken for one that passed: Swift Testing prints
/// `➜ Test "…" skipped: "SKIPPED: needs …"`, and a line
/// `SKIPPED: the test at FILE:LINE needs …` goes to stderr.
struct Requirement: Sendable {
    /// What is needed, and where it comes from (the Debian package, when there is one).
    let what: String
    let isMet: @Sendable () -> Bool

    /// An executable at `path`, from the Debian package `package`.
    static func program(_ path: String, package: String) -> Requirement {
        Requirement(what: "\(path) (Debian package \(package))") { FileManager.default.isExecutableFile(atPath: path) }
    }

    static let make = program("/usr/bin/make", package: "make")
    static let man = program("/usr/bin/man", package: "man-db")
    static let netcat = program("/usr/bin/nc", package: "netcat-openbsd")
    static let bash = program("/bin/bash", package: "bash")
    static let script = program("/usr/bin/script", package: "bsdutils")
    static let systemdAnalyze = program("/usr/bin/systemd-analyze", package: "systemd")
    static let etcd = program("/usr/bin/etcd", package: "etcd-server")
    /// Root, to act as another user (with setpriv, Debian package util-linux).
    static let root = Requirement(what: "root (euid 0) and /usr/bin/setpriv (Debian package util-linux)") {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
    }
    /// The tdb backend among the backends under test (`E2E.builtBackends`, `DIPC_E2E_BACKENDS`).
    static let tdbBackend = Requirement(what: "the tdb backend among the backends under test (DIPC_E2E_BACKENDS)") {
        E2E.hasTDB
    }
    /// At least two backends under test.
    static let twoBackends = Requirement(what: "two backends under test (DIPC_E2E_BACKENDS)") {
        E2E.builtBackends.count > 1
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only when every requirement is met; otherwise skips it loudly (see `Requirement`).
    static func requires(_ requirements: Requirement..., sourceLocation: SourceLocation = #_sourceLocation) -> Self {
        let what = requirements.map(\.what).joined(separator: " and ")
        return .enabled("SKIPPED: needs \(what)", sourceLocation: sourceLocation) {
            let missing = requirements.filter { !$0.isMet() }.map(\.what)
            if missing.isEmpty { return true }
            let line = "SKIPPED: the test at \(sourceLocation.fileName):\(sourceLocation.line) needs "
                + missing.joined(separator: " and ") + "\n"
            FileHandle.standardError.write(Data(line.utf8))
            return false
        }
    }
}
