extension HeaderOutcome {
    /// What a connection that has not authenticated yet gets for this header, on a
    /// server with `--auth-file` (SPEC §2): `a` and `q` as usual; a syntax error and a
    /// size error keep their usual rule (a malformed header is still `err syntax`, and
    /// data that cannot be skipped still closes); anything else is refused with
    /// `err auth authentication required`, keeping the connection open, after the data
    /// of a `w`/`p` is read and dropped so that the stream stays in sync.
    func refusedUntilAuthenticated() -> HeaderOutcome {
        let refused = ProtocolError.authenticationRequired
        switch self {
        case .result(.request(.quit)), .result(.request(.authenticate)):
            return self
        case .result(.request):
            return .result(.failure(refused))
        case let .result(.failure(error)):
            return error.code == .range ? .result(.failure(refused)) : self
        case let .payload(length, target):
            if case let .drop(error) = target, error.code == .syntax { return self }
            return .payload(length: length, target: .drop(refused))
        case let .line(target):
            if case let .drop(error) = target, error.code == .syntax { return self }
            return .line(.drop(refused))
        }
    }
}
