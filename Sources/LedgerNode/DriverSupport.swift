import Foundation
import LedgerCore
import LedgerStore

/// The read position of one `committedEvents` stream and the batch read ahead.
final class EventCursor: @unchecked Sendable {
    private let lock = NSLock()
    private var buffered: [LoggedEvent] = []
    private var index = 0
    private var nextSequence: SequenceNumber
    init(next: SequenceNumber) { nextSequence = next }
    var next: SequenceNumber { lock.withLock { nextSequence } }
    func pop() -> LoggedEvent? {
        lock.withLock {
            guard index < buffered.count else { return nil }
            defer { index += 1 }
            return buffered[index]
        }
    }
    func fill(_ batch: [LoggedEvent]) {
        lock.withLock {
            buffered = batch
            index = 0
            if let last = batch.last { nextSequence = SequenceNumber(last.sequence.value + 1) }
        }
    }
}

/// The outcome of a write made on another thread.
final class WriteResult: @unchecked Sendable {
    private let lock = NSLock()
    private var error: StoreError?
    func set(_ e: StoreError) { lock.withLock { error = e } }
    func get() -> StoreError? { lock.withLock { error } }
}
