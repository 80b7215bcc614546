/// Task-fair (`fifo`) admission: every access takes a ticket; the access whose
/// ticket is being served enters when it is compatible with the current holders.
/// A reader that enters advances `serving` at once, so the next reader in line
/// enters with it; a writer at the head waits for the readers to drain and keeps
/// everyone behind it waiting.
extension Coordinator {
    func fifoAcquire(_ record: CoordinatorRecord, exclusive: Bool) throws {
        try lock(record)
        var epoch = record.epoch
        var ticket = record.takeTicket()
        record.addTicketHolder(slot)
        var lastCheck = monotonicNanoseconds()
        let arrival = lastCheck
        var waited = false
        while true {
            if record.epoch != epoch {
                // Tickets were voided by a recovery: queue again.
                epoch = record.epoch
                ticket = record.takeTicket()
            }
            if record.serving == ticket && record.writer == 0 && (!exclusive || record.activeReaders == 0) {
                record.serving = ticket &+ 1
                record.removeTicketHolder(slot)
                if exclusive {
                    record.writer = writerTag
                } else {
                    record.addReadHold(slot)
                }
                // A reader's entry may let the next reader in line enter too.
                let wake = !exclusive && record.ticketHolders > 0
                if wake { record.bumpWake() }
                record.mutex.unlock()
                if wake { Futex.wakeAll(record.wakePointer) }
                if waited { CoordinatorMetrics.recordWait(exclusive: exclusive, since: arrival) }
                return
            }
            waited = true
            try sleep(record, lastCheck: &lastCheck)
        }
    }
}
