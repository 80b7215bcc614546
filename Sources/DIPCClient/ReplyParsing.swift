/// Parsing of the server's reply lines (wire protocol, section 2 of the spec).
/// Kept inside the client so that it depends on no other module's API.
///
/// Contract: every function takes one reply line without its `\n`. A line starting
/// with `err` becomes `DIPCClientError.server`; anything the protocol does not allow
/// for the request becomes `DIPCClientError.protocolViolation` naming the request
/// and quoting the line.
enum ReplyParsing {
    /// Throws `.server(code:message:)` when `line` is `err CODE MESSAGE`.
    static func throwIfError(_ line: String) throws {
        guard line == "err" || line.hasPrefix("err ") else { return }
        var rest = line.dropFirst(3).drop(while: { $0 == " " })
        let code = rest.prefix(while: { $0 != " " })
        rest = rest.dropFirst(code.count)
        if rest.first == " " { rest = rest.dropFirst() }
        throw DIPCClientError.server(code: String(code), message: String(rest))
    }

    /// `ok LEN VERSION` (replies to `r` and `c`).
    static func dataHeader(_ line: String, request: String) throws -> (length: Int, version: UInt64) {
        try throwIfError(line)
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 3, fields[0] == "ok",
              let length = decimal(fields[1]), length <= UInt64(Int.max),
              let version = decimal(fields[2])
        else { throw violation(request, expected: "ok LEN VERSION", got: line) }
        return (Int(length), version)
    }

    /// `ok VERSION` (replies to `w` and `p`).
    static func version(_ line: String, request: String) throws -> UInt64 {
        try throwIfError(line)
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 2, fields[0] == "ok", let version = decimal(fields[1])
        else { throw violation(request, expected: "ok VERSION", got: line) }
        return version
    }

    /// `ok [BANNER] KEY=VALUE ...`, in the order given. With `banner` set (the `i`
    /// reply), the first field after `ok` must start with it (e.g. `dipc/`).
    static func pairs(_ line: String, request: String, banner: String?) throws -> [(key: String, value: String)] {
        try throwIfError(line)
        var fields = line.split(separator: " ", omittingEmptySubsequences: true)[...]
        let expected = banner.map { "ok \($0)N KEY=VALUE ..." } ?? "ok KEY=VALUE ..."
        guard fields.first == "ok" else { throw violation(request, expected: expected, got: line) }
        fields = fields.dropFirst()
        if let banner {
            guard let first = fields.first, first.hasPrefix(banner) else {
                throw violation(request, expected: expected, got: line)
            }
            fields = fields.dropFirst()
        }
        var result: [(key: String, value: String)] = []
        for field in fields {
            guard let eq = field.firstIndex(of: "="), eq != field.startIndex else {
                throw violation(request, expected: expected, got: line)
            }
            result.append((String(field[..<eq]), String(field[field.index(after: eq)...])))
        }
        return result
    }

    /// `ok` (reply to `a`).
    static func okay(_ line: String, request: String) throws {
        try throwIfError(line)
        guard line == "ok" else { throw violation(request, expected: "ok", got: line) }
    }

    /// `bye` (reply to `q`).
    static func bye(_ line: String) throws {
        try throwIfError(line)
        guard line == "bye" else { throw violation("q", expected: "bye", got: line) }
    }

    /// A plain decimal number (digits only, no sign) that fits in 64 bits.
    static func decimal<S: StringProtocol>(_ text: S) -> UInt64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        return UInt64(text)
    }

    private static func violation(_ request: String, expected: String, got line: String) -> DIPCClientError {
        let shown = line.count > 120 ? String(line.prefix(120)) + "..." : line
        return .protocolViolation("reply to '\(request)': expected '\(expected)', got '\(shown)'")
    }
}
