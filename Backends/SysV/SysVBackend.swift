import DIPCCore
import DIPCMapped

/// The System V backend: the whole store in one `SysVSegment`.
public enum SysVBackend {
    /// Opens store `name` (creating it when `create` and missing); nil when it does not
    /// exist and `create` is false.
    public static func open(name: String, geometry: StoreGeometry, create: Bool) throws -> BlockBackend? {
        try MappedBlockBackend.open(name: name, geometry: geometry) { size in
            try SysVSegment.open(name: name, size: size, create: create)
        }
    }
}
