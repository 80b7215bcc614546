// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "dipc",
    products: [
        .executable(name: "dipc", targets: ["dipc"]),
        .executable(name: "dipcrm", targets: ["dipcrm"]),
        .executable(name: "dipc-client", targets: ["dipc-client"]),
        .library(name: "DIPCClient", targets: ["DIPCClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
        // Latency histograms for dipc-bench only.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        // `dipc --metrics`: the swift-metrics API with Prometheus's text format as its backend.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C wrappers for what Swift cannot call (variadic semctl, futex, spawn with setsid).
        .target(name: "CDIPCShims", path: "Sources/CDIPCShims"),
        // The wire format: incremental request decoder and reply encoder. No I/O.
        .target(name: "DIPCProtocol", path: "Sources/DIPCProtocol"),
        // BlockBackend, geometry, errors, syscall helpers, shared layout, coordinator.
        .target(
            name: "DIPCCore",
            dependencies: [
                "CDIPCShims", .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            path: "Sources/DIPCCore",
            // The coordinator's Promela model and its checker (make verify).
            exclude: ["Model"]),
        // Shared-memory mapping that several backends use: a store laid out in one
        // mapped segment (sysv, posix) and POSIX shm objects (also tdb's control map).
        .target(
            name: "DIPCMapped",
            dependencies: ["DIPCCore", .product(name: "Atomics", package: "swift-atomics")],
            path: "Backends/Mapped"),
        // What a backend declares to the registry: name, options, stores, clean-up.
        .target(
            name: "DIPCBackendProvider",
            dependencies: ["DIPCCore", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/DIPCBackendProvider"),
        .target(name: "DIPCSysV", dependencies: ["DIPCCore", "DIPCMapped", "DIPCBackendProvider"], path: "Backends/SysV"),
        .target(name: "DIPCPOSIX", dependencies: ["DIPCCore", "DIPCMapped", "DIPCBackendProvider"], path: "Backends/POSIX"),
        // Samba's libtdb (apt: libtdb-dev; the Makefile installs it).
        .systemLibrary(name: "CTDB", path: "Sources/CTDB", pkgConfig: "tdb", providers: [.apt(["libtdb-dev"])]),
        // OpenSSL 3 (apt: libssl-dev; the Makefile installs it): TLS for the server and the clients.
        .systemLibrary(name: "CDIPCOpenSSL", path: "Sources/CDIPCOpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "DIPCTDB", dependencies: ["DIPCCore", "DIPCMapped", "DIPCBackendProvider", "CTDB", .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "CoreMetrics", package: "swift-metrics")], path: "Backends/TDB"),
        // libcurl (apt: libcurl4-openssl-dev; the Makefile installs it): the etcd backend's HTTP client.
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // etcd (apt: etcd-server, etcd-client; the Makefile installs them), over its v3
        // HTTP/JSON gateway with libcurl: no package to build.
        .target(name: "DIPCEtcd", dependencies: ["DIPCCore", "DIPCBackendProvider", "CCurl", .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "CoreMetrics", package: "swift-metrics")], path: "Backends/Etcd"),
        // The backend conformance suite and an in-memory reference backend, for tests,
        // examples and future backends.
        // Also the linearizability history checker and its workload (DIPCClient: the workload's clients).
        .target(name: "DIPCTestSupport", dependencies: ["DIPCCore", "DIPCClient"], path: "Sources/DIPCTestSupport"),
        // The per-port runtime records and their directory (server, dipcrm, dipc-client ls).
        .target(name: "DIPCRuntime", dependencies: ["DIPCCore"], path: "Sources/DIPCRuntime"),
        // Listener, connection threads, limits, lifecycle. Never names a concrete backend.
        .target(
            name: "DIPCServer",
            dependencies: [
                "DIPCCore", "DIPCProtocol", "DIPCRuntime", "CDIPCShims", "CDIPCOpenSSL",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/DIPCServer"),
        // The backend registry: the one composition target that names the concrete backends.
        .target(
            name: "DIPCBackends",
            dependencies: [
                "DIPCCore", "DIPCBackendProvider", "DIPCSysV", "DIPCPOSIX", "DIPCTDB", "DIPCEtcd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/DIPCBackends"),
        // Blocking client library for Swift programs (its own small reply parser: no server code;
        // OpenSSL for --tls).
        .target(name: "DIPCClient", dependencies: ["CDIPCOpenSSL"], path: "Sources/DIPCClient"),
        // libedit (apt: libedit-dev; the Makefile installs it): line editing in `dipc-client shell`.
        .systemLibrary(name: "CEditLine", path: "Sources/CEditLine", pkgConfig: "libedit", providers: [.apt(["libedit-dev"])]),
        .executableTarget(
            name: "dipc",
            dependencies: [
                "DIPCServer", "DIPCBackends", "DIPCBackendProvider", "DIPCCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/dipc"),
        .executableTarget(
            name: "dipcrm",
            dependencies: [
                "DIPCServer", "DIPCBackends",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/dipcrm"),
        .executableTarget(
            name: "dipc-client",
            dependencies: [
                "DIPCClient", "DIPCRuntime", "DIPCCore", "CEditLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/dipc-client"),
        .executableTarget(
            name: "dipc-bench",
            dependencies: [
                "DIPCBackends", "DIPCBackendProvider", "DIPCCore", "DIPCClient", "DIPCTestSupport", "CDIPCOpenSSL", "DIPCEtcd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/dipc-bench"),
        // Soak test: two servers on one store, mixed clients, a SIGKILL midway (`make soak`).
        .executableTarget(
            name: "dipc-soak",
            dependencies: ["DIPCClient", "DIPCTestSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/dipc-soak"),
        .executableTarget(name: "dipc-producer-consumer", dependencies: ["DIPCClient"], path: "Examples/ProducerConsumer"),
        .executableTarget(name: "dipc-chat", dependencies: ["DIPCClient"], path: "Examples/Chat"),
        .testTarget(name: "DIPCProtocolTests", dependencies: ["DIPCProtocol", "DIPCTestSupport"]),
        .testTarget(
            name: "DIPCBackendConformanceTests",
            dependencies: ["DIPCTestSupport", "DIPCBackends", "DIPCBackendProvider", "DIPCCore", "DIPCEtcd"]),
        // Second process for the coordinator's cross-process tests.
        .executableTarget(name: "dipc-lockprobe", dependencies: ["DIPCCore"], path: "Tests/LockProbe"),
        .testTarget(name: "DIPCCoreTests", dependencies: ["DIPCCore", "DIPCSysV", "dipc-lockprobe"]),
        .testTarget(name: "DIPCClientTests", dependencies: ["DIPCClient"]),
        // The test support library's own tests (the linearizability checker).
        .testTarget(name: "DIPCTestSupportTests", dependencies: ["DIPCTestSupport"]),
        .testTarget(
            name: "DIPCServerTests",
            dependencies: ["DIPCServer", "DIPCCore", "DIPCRuntime", "DIPCTestSupport", .product(name: "Logging", package: "swift-log")]),
        // Starts the real binaries; the registry says which backends to start them with
        // (CDIPCOpenSSL: the hostile-client tests also speak TLS).
        .testTarget(
            name: "DIPCEndToEndTests",
            dependencies: [
                "DIPCTestSupport", "DIPCBackends", "CDIPCOpenSSL",
                "dipc", "dipcrm", "dipc-client", "dipc-producer-consumer", "dipc-chat",
            ]),
        .testTarget(name: "DIPCTDBTests", dependencies: ["DIPCTDB", "DIPCCore", "DIPCTestSupport", "CTDB"]),
    ]
)

// libFuzzer targets for the request decoder and for the whole request handler, only
// when FUZZ is set (see Fuzz/README.md).
if Context.environment["FUZZ"] != nil {
    package.targets.append(
        .executableTarget(name: "dipc-fuzz-decoder", dependencies: ["DIPCProtocol"], path: "Fuzz/DecoderFuzzer"))
    package.targets.append(
        .executableTarget(
            name: "dipc-fuzz-handler",
            dependencies: [
                "DIPCServer", "DIPCProtocol", "DIPCCore", "DIPCTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Fuzz/HandlerFuzzer"))
}
