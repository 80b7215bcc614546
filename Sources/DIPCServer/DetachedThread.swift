import CDIPCShims
import DIPCCore
import Glibc

/// Stack reserved for each server thread (accept loop, connections). The request path
/// is shallow (no recursion, buffers on the heap), so 512 KiB is ample; the default
/// (RLIMIT_STACK, usually 8 MiB) would reserve 8 GiB of address space for 1,000
/// connections. Only the pages a thread touches become resident either way.
let serverThreadStackSize = 512 * 1024

/// Starts `body` on a new detached pthread named `name`, with `serverThreadStackSize` of stack.
///
/// Threads are started from this library function, never from a closure literal in
/// top-level code (Swift 6 would make such a closure `@MainActor`).
func startDetachedThread(name: String, _ body: @escaping @Sendable () -> Void) throws {
    _ = try startThread(name: name, detached: true, body)
}

/// Starts `body` on a new joinable pthread named `name` (see `startDetachedThread`);
/// the caller must `pthread_join` the returned thread once.
func startJoinableThread(name: String, _ body: @escaping @Sendable () -> Void) throws -> pthread_t {
    try startThread(name: name, detached: false, body)
}

private func startThread(name: String, detached: Bool, _ body: @escaping @Sendable () -> Void) throws -> pthread_t {
    final class Box { let name: String; let body: @Sendable () -> Void; init(_ n: String, _ b: @escaping @Sendable () -> Void) { name = n; body = b } }
    var attributes = pthread_attr_t()
    try errnoReturningCall("pthread_attr_init") { pthread_attr_init(&attributes) }
    defer { errnoReturningCallOrTrap("pthread_attr_destroy") { pthread_attr_destroy(&attributes) } }
    try errnoReturningCall("pthread_attr_setdetachstate") {
        pthread_attr_setdetachstate(&attributes, Int32(detached ? PTHREAD_CREATE_DETACHED : PTHREAD_CREATE_JOINABLE))
    }
    try errnoReturningCall("pthread_attr_setstacksize") { pthread_attr_setstacksize(&attributes, serverThreadStackSize) }
    let context = Unmanaged.passRetained(Box(name, body)).toOpaque()
    var thread = pthread_t()
    do {
        try errnoReturningCall("pthread_create") {
            pthread_create(&thread, &attributes, { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                // The name only helps debuggers and `top -H`; the one possible failure
                // (ERANGE) cannot happen, as the shim truncates to 15 bytes.
                ignoringFailure("a thread name is cosmetic") { cdipc_set_thread_name(box.name) }
                box.body()
                return nil
            }, context)
        }
    } catch {
        Unmanaged<Box>.fromOpaque(context).release()
        throw error
    }
    return thread
}
