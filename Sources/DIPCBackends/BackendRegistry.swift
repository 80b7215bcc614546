import ArgumentParser
import DIPCBackendProvider
import DIPCEtcd
import DIPCPOSIX
import DIPCSysV
import DIPCTDB

/// The one list of backends, read by `dipc` (the `--backend` values and every backend's
/// own options), `dipcrm` (clean-up after a crash), the conformance suite and the
/// end-to-end tests. The first is the default.
///
/// Adding a backend: its folder under Backends/ with a `BackendProvider`, its target in
/// Package.swift (a dependency of this target), and one `@OptionGroup` line here.
public struct BackendRegistry: ParsableArguments {
    @OptionGroup var sysv: SysVProvider
    @OptionGroup var posix: POSIXProvider
    @OptionGroup var tdb: TDBProvider
    @OptionGroup var etcd: EtcdProvider

    public init() {}
}
