import DIPCBackendProvider
import DIPCCore
import Glibc

/// `--backend sysv`: one System V shared-memory segment per store. No options of its own.
public struct SysVProvider: OptionlessBackendProvider {
    public static let name = "sysv"

    public init() {}

    public static func store(_ request: StoreRequest) -> any BackendStore {
        let key = SysVSegment.key(for: request.name)
        return CoordinatedStore(
            request: request, removes: "sysv shared memory",
            openBackend: { create in try SysVBackend.open(name: request.name, geometry: request.geometry, create: create) },
            leftovers: { objects(key: key) },
            destroy: {
                let id = shmget(key, 0, 0)
                if id >= 0 { ignoringFailure("a segment removed meanwhile is destroyed") { shmctl(id, IPC_RMID, nil) } }
            })
    }

    /// Segments and semaphore sets with `key`, from /proc/sysvipc (a removed segment
    /// that is still attached shows key 0 there, so it no longer counts).
    static func objects(key: key_t) -> [String] {
        var found: [String] = []
        for (file, kind) in [("/proc/sysvipc/shm", "shm"), ("/proc/sysvipc/sem", "sem")] {
            guard let text = readSmallFile(file) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count >= 2, let k = Int64(fields[0]), Int32(truncatingIfNeeded: k) == key else { continue }
                found.append("System V \(kind) id \(fields[1]) key \(key)")
            }
        }
        return found
    }
}
