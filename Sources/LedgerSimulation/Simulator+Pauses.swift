// The liveness check of the rotating-fault scenarios: how long waiting client work
// went without a commit.
extension Simulation {
    /// How long the oldest waiting client event has waited for a commit, at `t`.
    func waitingSince() -> UInt64? {
        var oldest: UInt64?
        for p in clientPending { for e in p where acked[e.id] == nil { oldest = min(oldest ?? e.at, e.at) } }
        return oldest.map { max($0, lastCommitAt) }
    }

    /// Records the pause a new commit at `t` ends, and holds it to the bound where the
    /// scenario keeps at most f replicas faulty.
    func notePause(until t: UInt64) {
        guard let since = waitingSince(), t > since else { return }
        let pause = t - since
        pauses.append(pause)
        if scenario.faultRotation != nil, pause > pauseBoundMs {
            violation("liveness: no commit for \(pause) ms (from t=\(since)ms) with at most \(scenario.faultRotation!.concurrent) replica(s) faulty; the bound is \(pauseBoundMs) ms")
        }
    }
}
