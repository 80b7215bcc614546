import DIPCCore
