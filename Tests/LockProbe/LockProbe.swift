// A second process for the coordinator's cross-process tests.
//
// Usage: dipc-lockprobe SHM_NAME MAILBOXES POLICY SLOT MAILBOX MODE PARENT_PID
//   MODE read | write: take that lock on MAILBOX, print "locked", hold it until a
//        line arrives on stdin, release, print "released", exit 0.
//   MODE mutex: lock MAILBOX's record mutex itself, scramble the state as a holder
//        dying mid-update would (unrecorded tickets, wrong aggregates), print
//        "locked", wait for a stdin line (the test kills it before).
//   MODE stress: 4 threads × 3000 mixed accesses to MAILBOX, checking exclusion
//        with the counters that follow the region (see `StressCounters`); prints "done".
// The probe believes every slot alive except PARENT_PID's slot 0 once it is gone.
@preconcurrency import Glibc
import Synchronization

import DIPCCore

@main
enum LockProbe {
    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)
        let args = CommandLine.arguments
        guard args.count == 8, let mailboxes = Int(args[2]), let policy = CoordinatorPolicy(rawValue: args[3]),
            let slot = Int(args[4]), let mailbox = Int(args[5]), let parent = Int32(args[7])
        else {
            fail("usage: dipc-lockprobe SHM_NAME MAILBOXES POLICY SLOT MAILBOX read|write|mutex PARENT_PID")
        }
        let size = Coordinator.regionSize(mailboxes: mailboxes) + (args[6] == "stress" ? StressCounters.size : 0)
        let fd = shm_open(args[1], O_RDWR, 0o600)
        guard fd >= 0 else { fail("shm_open: errno \(errno)") }
        guard let region = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), region != MAP_FAILED else {
            fail("mmap: errno \(errno)")
        }
        close(fd)
        let coordinator = Coordinator(
            region: region, mailboxes: mailboxes, policy: policy, slot: slot,
            isSlotAlive: { $0 == 0 ? kill(parent, 0) == 0 : true })
        do {
            switch args[6] {
            case "read":
                try coordinator.withReadAccess(to: mailbox) { holdUntiltold() }
            case "write":
                try coordinator.withWriteAccess(to: mailbox) { holdUntiltold() }
            case "mutex":
                let record = coordinator.record(mailbox)
                _ = try record.mutex.lock()
                _ = record.takeTicket()
                _ = record.takeTicket()
                record.activeReaders = record.activeReaders &+ 3
                record.ticketHolders = record.ticketHolders &+ 1
                record.setTickets(slot, 1)
                holdUntiltold()
                record.mutex.unlock()
            case "stress":
                let counters = StressCounters(at: region + Coordinator.regionSize(mailboxes: mailboxes))
                StressCounters.hammer(coordinator, mailbox: mailbox, counters: counters, threads: 4, operations: 3000)
                print("done")
                return
            default:
                fail("unknown mode \(args[6])")
            }
        } catch {
            fail("\(error)")
        }
        print("released")
    }

    static func holdUntiltold() {
        print("locked")
        _ = readLine()
    }

    static func fail(_ message: String) -> Never {
        fputs("dipc-lockprobe: \(message)\n", stderr)
        exit(2)
    }
}
