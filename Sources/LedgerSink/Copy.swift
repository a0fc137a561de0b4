import LedgerCore
import PostgresNIO

/// Rows in PostgreSQL's COPY text format: fields separated by tabs, one row per line,
/// `\N` for NULL, and backslash, tab, newline and carriage return escaped in text. A
/// bytea field is `\\x` and hex (the backslash itself escaped).
struct CopyRows {
    private(set) var buffer = ByteBuffer()
    private(set) var count = 0
    private var fieldsInRow = 0

    init(capacity: Int = 1 << 16) { buffer.reserveCapacity(capacity) }

    private mutating func separate() {
        if fieldsInRow > 0 { buffer.writeInteger(UInt8(ascii: "\t")) }
        fieldsInRow += 1
    }

    static let digits = Array("0123456789abcdef".utf8)

    mutating func bytes(_ b: [UInt8]) {
        separate()
        buffer.writeStaticString("\\\\x")
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 2 * b.count) { out in
            Self.digits.withUnsafeBufferPointer { d in
                for (i, x) in b.enumerated() { out[2 * i] = d[Int(x >> 4)]; out[2 * i + 1] = d[Int(x & 15)] }
            }
            return 2 * b.count
        }
    }

    mutating func bytes(_ b: Bytes32) { bytes(b.bytes) }

    mutating func int<I: BinaryInteger>(_ v: I) {
        separate()
        buffer.writeString(String(v))
    }

    mutating func text(_ s: String) {
        separate()
        // Most text needs no escape: one copy.
        guard s.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else {
            buffer.writeString(s)
            return
        }
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case 0x09: buffer.writeStaticString("\\t")
            case 0x0A: buffer.writeStaticString("\\n")
            case 0x0D: buffer.writeStaticString("\\r")
            default: buffer.writeInteger(b)
            }
        }
    }

    mutating func null() {
        separate()
        buffer.writeStaticString("\\N")
    }

    /// Where a row starts, to take it back with `cancelRow` (an entity that turned out absent).
    func beginRow() -> Int { buffer.writerIndex }

    mutating func cancelRow(_ mark: Int) {
        buffer.moveWriterIndex(to: mark)
        fieldsInRow = 0
    }

    mutating func endRow() {
        buffer.writeInteger(UInt8(ascii: "\n"))
        fieldsInRow = 0
        count += 1
    }
}
