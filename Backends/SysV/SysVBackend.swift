import DIPCCore

/// The System V backend: the whole store in one `SysVSegment`.
public enum SysVBackend {
    /// Opens store `name` (creating it when `create` and missing); nil when it does not
    /// exist and `create` is false.
    public static func open(name: String, geometry: StoreGeometry, create: Bool) throws -> BlockBackend? {
        guard let size = StoreLayout.mappedSize(for: geometry) else {
            throw StoreError.tooLarge("\(geometry) is too large to address")
        }
        guard let segment = try SysVSegment.open(name: name, size: size, create: create) else { return nil }
        do {
            return try MappedBlockBackend(segment: segment, geometry: geometry, name: name)
        } catch {
            segment.unmap()
            if segment.created { try? segment.remove() }
            throw error
        }
    }
}
