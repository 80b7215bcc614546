import ArgumentParser
import DIPCBackendProvider
import DIPCCore
import Glibc

/// `--backend posix`: one POSIX shared-memory object per store (`/dev/shm/dipc.NAME`).
/// No options of its own.
public struct POSIXProvider: BackendProvider {
    public static let name = "posix"

    public init() {}

    public var givenOptions: [String] { [] }

    public func store(for request: StoreRequest) throws -> any BackendStore { Self.store(request) }

    public static func store(for request: StoreRequest, record field: (String) -> String?) -> any BackendStore {
        store(request)
    }

    public static func scratchStore(for request: StoreRequest, directory: String) -> any BackendStore {
        store(request)
    }

    private static func store(_ request: StoreRequest) -> CoordinatedStore {
        let objectName = POSIXBackend.objectName(for: request.name)
        return CoordinatedStore(
            request: request, removes: "posix shared memory",
            openBackend: { create in try POSIXBackend.open(name: request.name, geometry: request.geometry, create: create) },
            leftovers: {
                var st = stat()
                return lstat("/dev/shm" + objectName, &st) == 0 ? ["/dev/shm" + objectName] : []
            },
            destroy: { _ = shm_unlink(objectName) })
    }
}
