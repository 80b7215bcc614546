import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The whole text of a /proc file. (`String(contentsOfFile:)` stops after the first page of
/// a /proc file, whose size reads as 0, so a long table such as /proc/net/tcp is cut short.)
func procFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return nil }
        if n == 0 { return String(decoding: bytes, as: UTF8.self) }
        bytes += chunk[0..<n]
    }
}
