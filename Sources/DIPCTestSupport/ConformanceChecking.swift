/// What a conformance check gives its steps: `fail` names the backend, the check and
/// the step; the assertions below throw that failure when the backend breaks the clause.
protocol ConformanceChecking {
    func fail(_ step: String, expected: String, got: String) -> ConformanceFailure
}

extension ConformanceChecking {
    func expect<T: Equatable>(_ got: T, _ expected: T, _ step: @autoclosure () -> String) throws {
        if got != expected { throw fail(step(), expected: "\(expected)", got: "\(got)") }
    }

    func expectBytes(_ got: [UInt8], _ expected: [UInt8], _ step: @autoclosure () -> String) throws {
        if got != expected { throw fail(step(), expected: describe(expected), got: describe(got)) }
    }

    /// Runs a call on the store or backend under test; an error it throws (other than a
    /// `ConformanceFailure`) becomes a failure of `step`.
    func attempt<T>(_ step: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let failure as ConformanceFailure {
            throw failure
        } catch {
            throw fail(step(), expected: "no error", got: "\(type(of: error)) \(error)")
        }
    }
}
