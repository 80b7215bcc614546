/// The storage backends DIPC can serve from (`--backend`).
public enum BackendKind: String, CaseIterable, Sendable {
    /// System V shared memory.
    case sysv
    /// POSIX shared memory (`/dev/shm`).
    case posix
    /// A TDB file (persistent).
    case tdb
}
