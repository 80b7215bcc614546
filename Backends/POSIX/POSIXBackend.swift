import DIPCCore
import DIPCMapped

/// The POSIX shared-memory backend: the whole store in one `POSIXSegment` named
/// `/dipc.NAME`, laid out exactly as the System V backend's segment.
public enum POSIXBackend {
    /// The shm object name of store `name`.
    public static func objectName(for name: String) -> String { "/dipc.\(name)" }

    /// Opens store `name` (creating it when `create` and missing); nil when it does not
    /// exist and `create` is false.
    public static func open(name: String, geometry: StoreGeometry, create: Bool) throws -> BlockBackend? {
        try MappedBlockBackend.open(name: name, geometry: geometry) { size in
            try POSIXSegment.open(objectName: objectName(for: name), size: size, create: create)
        }
    }
}
