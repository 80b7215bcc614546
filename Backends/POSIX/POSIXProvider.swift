import DIPCBackendProvider
import DIPCCore
import Glibc

/// `--backend posix`: one POSIX shared-memory object per store (`/dev/shm/dipc.NAME`).
/// No options of its own.
public struct POSIXProvider: OptionlessBackendProvider {
    public static let name = "posix"

    public init() {}

    public static func store(_ request: StoreRequest) -> any BackendStore {
        let objectName = POSIXBackend.objectName(for: request.name)
        return CoordinatedStore(
            request: request, removes: "posix shared memory",
            openBackend: { create in try POSIXBackend.open(name: request.name, geometry: request.geometry, create: create) },
            leftovers: {
                var st = stat()
                return lstat("/dev/shm" + objectName, &st) == 0 ? ["/dev/shm" + objectName] : []
            },
            destroy: { ignoringFailure("an object that is gone is destroyed") { shm_unlink(objectName) } })
    }
}
