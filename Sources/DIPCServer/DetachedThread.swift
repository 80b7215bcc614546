import CDIPCShims
import DIPCCore
import Glibc

/// Starts `body` on a new detached pthread named `name`.
///
/// Threads are started from this library function, never from a closure literal in
/// top-level code (Swift 6 would make such a closure `@MainActor`).
func startDetachedThread(name: String, _ body: @escaping @Sendable () -> Void) throws {
    final class Box { let name: String; let body: @Sendable () -> Void; init(_ n: String, _ b: @escaping @Sendable () -> Void) { name = n; body = b } }
    let context = Unmanaged.passRetained(Box(name, body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attributes, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        _ = cdipc_set_thread_name(box.name)
        box.body()
        return nil
    }, context)
    if rc != 0 {
        Unmanaged<Box>.fromOpaque(context).release()
        throw SystemError("pthread_create", errno: rc)
    }
}
