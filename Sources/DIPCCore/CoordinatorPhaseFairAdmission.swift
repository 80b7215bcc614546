/// Phase-fair admission (Brandenburg and Anderson): writers queue on tickets among
/// themselves. A reader enters at once unless a writer is present (holding or
/// queued); then it is blocked until the next writer releases, which moves every
/// blocked reader into the read holds at once and opens a new `phase`. The next
/// writer then waits for those readers to drain, while newly arriving readers
/// block again: reader and writer phases alternate.
extension Coordinator {
    func phaseFairAcquireRead(_ record: CoordinatorRecord) throws {
        try lock(record)
        if record.writer == 0 && record.ticketHolders == 0 {
            record.addReadHold(slot)
            record.mutex.unlock()
            return
        }
        let phase = record.phase
        record.addBlockedReader(slot)
        var lastCheck = monotonicNanoseconds()
        let arrival = lastCheck
        // The admitting writer already counted this reader in the read holds.
        while record.phase == phase {
            try sleep(record, lastCheck: &lastCheck)
        }
        record.mutex.unlock()
        CoordinatorMetrics.recordWait(exclusive: false, since: arrival)
    }

    func phaseFairAcquireWrite(_ record: CoordinatorRecord) throws {
        try lock(record)
        var epoch = record.epoch
        var ticket = record.takeTicket()
        record.addTicketHolder(slot)
        var lastCheck = monotonicNanoseconds()
        let arrival = lastCheck
        var waited = false
        while true {
            if record.epoch != epoch {
                epoch = record.epoch
                ticket = record.takeTicket()
            }
            if record.serving == ticket && record.writer == 0 && record.activeReaders == 0 {
                record.serving = ticket &+ 1
                record.removeTicketHolder(slot)
                record.writer = writerTag
                record.mutex.unlock()
                if waited { CoordinatorMetrics.recordWait(exclusive: true, since: arrival) }
                return
            }
            waited = true
            try sleep(record, lastCheck: &lastCheck)
        }
    }
}
