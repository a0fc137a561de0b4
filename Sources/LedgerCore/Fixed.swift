/// 32 bytes held as four big-endian words: cheap to hash and compare, and its `<`
/// is the lexicographic order of the bytes, which canonical encodings sort by.
public struct Bytes32: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    public static let zero = Bytes32(w0: 0, w1: 0, w2: 0, w3: 0)

    /// Hashes all four words. Not every value is a digest: a transfer's recipient is any
    /// 32 bytes its sender picks, and accounts are keyed by it. Hashing the first word
    /// alone let a sender make thousands of account keys with one hash value (inserting
    /// 20,000 of them took 70x as long as 20,000 others, and grew with the square);
    /// Swift's seeded SipHash over every byte leaves nothing to aim at. A lookup costs
    /// ~18% more than with one word.
    @inlinable
    public func hash(into hasher: inout Hasher) {
        hasher.combine(w0); hasher.combine(w1); hasher.combine(w2); hasher.combine(w3)
    }

    public init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
    }

    /// From exactly 32 bytes (precondition: the caller checked the length).
    @inlinable
    public init<C: Collection>(_ b: C) where C.Element == UInt8 {
        precondition(b.count == 32, "Bytes32 needs 32 bytes")
        if let v = b.withContiguousStorageIfAvailable({ Bytes32(UnsafeRawBufferPointer($0)) }) { self = v; return }
        self = Array(b).withUnsafeBytes { Bytes32($0) }
    }

    /// From the first 32 bytes at `p` (precondition: at least 32 are there).
    @inlinable
    public init(_ p: UnsafeRawBufferPointer) {
        precondition(p.count >= 32, "Bytes32 needs 32 bytes")
        w0 = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        w1 = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        w2 = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        w3 = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// Calls `body` with the 32 bytes, without allocating.
    @inlinable
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var t = (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian)
        return try withUnsafeBytes(of: &t) { try body($0) }
    }

    public init?(hex: String) {
        guard let b = Hex.decode(hex), b.count == 32 else { return nil }
        self.init(b)
    }

    public var bytes: [UInt8] { withBytes { Array($0) } }

    @inlinable
    public func append(to out: inout [UInt8]) { withBytes { out.append(contentsOf: $0) } }

    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }
    public var short: String { String(hex.prefix(12)) }

    @inlinable
    public static func < (a: Bytes32, b: Bytes32) -> Bool {
        (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3)
    }
}

public struct Bytes64: Hashable, Sendable, CustomStringConvertible {
    public var hi: Bytes32, lo: Bytes32
    public static let zero = Bytes64(hi: .zero, lo: .zero)
    public init(hi: Bytes32, lo: Bytes32) { self.hi = hi; self.lo = lo }
    public init<C: Collection>(_ b: C) where C.Element == UInt8 {
        precondition(b.count == 64, "Bytes64 needs 64 bytes")
        let a = Array(b)
        (hi, lo) = a.withUnsafeBytes { (Bytes32($0), Bytes32(UnsafeRawBufferPointer(rebasing: $0[32...]))) }
    }
    /// Calls `body` with the 64 bytes, without allocating.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var t = (hi.w0.bigEndian, hi.w1.bigEndian, hi.w2.bigEndian, hi.w3.bigEndian, lo.w0.bigEndian, lo.w1.bigEndian, lo.w2.bigEndian, lo.w3.bigEndian)
        return try withUnsafeBytes(of: &t) { try body($0) }
    }
    public var bytes: [UInt8] { withBytes { Array($0) } }
    public func append(to out: inout [UInt8]) { withBytes { out.append(contentsOf: $0) } }
    public var description: String { Hex.encode(bytes) }
}

/// An Ed25519 public key.
public typealias PublicKey = Bytes32
/// An Ed25519 signature.
public typealias Signature = Bytes64
/// A BLAKE2b-256 digest.
public typealias Hash32 = Bytes32

/// A 32-byte name of one kind of thing. Each kind is its own type, so an event id cannot
/// be passed where a job or an alliance is expected, nor a hash where an id is; the
/// bytes (`raw`) are what every encoding writes, so the types change no byte.
public struct Identifier<Kind: IdentifierKind>: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: Bytes32

    @inlinable public init(_ raw: Bytes32) { self.raw = raw }
    /// 32 zero bytes: "none" where a payload's field is optional (an interaction's meme).
    public static var zero: Self { Self(.zero) }
    public init?(hex: String) {
        guard let b = Bytes32(hex: hex) else { return nil }
        raw = b
    }

    @inlinable public func hash(into hasher: inout Hasher) { raw.hash(into: &hasher) }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.raw < b.raw }
    @inlinable public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try raw.withBytes(body) }
    @inlinable public func append(to out: inout [UInt8]) { raw.append(to: &out) }
    public var bytes: [UInt8] { raw.bytes }
    public var hex: String { raw.hex }
    public var short: String { raw.short }
    public var description: String { raw.description }
}

/// 32 bytes under a name: plain (`Bytes32`, a key or a digest) or a typed identifier.
public protocol Bytes32Named: Hashable, Sendable {
    init(_ raw: Bytes32)
    var raw: Bytes32 { get }
}

extension Bytes32: Bytes32Named {
    @inlinable public init(_ raw: Bytes32) { self = raw }
    @inlinable public var raw: Bytes32 { self }
}

extension Identifier: Bytes32Named {}

/// What an `Identifier` names.
public protocol IdentifierKind: Sendable {}
public enum EventKindName: IdentifierKind {}
public enum ValidatorKindName: IdentifierKind {}
public enum AllianceKindName: IdentifierKind {}
public enum JobKindName: IdentifierKind {}
public enum MemeKindName: IdentifierKind {}
public enum ProposalKindName: IdentifierKind {}

/// An event's id: BLAKE2b-256 of its stored bytes.
public typealias EventID = Identifier<EventKindName>
/// A validator is named by the account key it registered with (`ValidatorID(accountKey)`);
/// its consensus key may rotate, so a consensus key is not a validator id.
public typealias ValidatorID = Identifier<ValidatorKindName>
/// An alliance is named by the id of the event that proposed it.
public typealias AllianceID = Identifier<AllianceKindName>

extension Identifier {
    /// The entity named by the event `e` that created it (a job, meme, proposal or alliance).
    @inlinable public init(createdBy e: EventID) { raw = e.raw }
}

/// A count or position held as one `UInt64` under its own name (a height, a view, a
/// sequence number), so one is never passed for another. The arithmetic-free parts
/// are written once here.
public protocol Numbered: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral
where IntegerLiteralType == UInt64 {
    var value: UInt64 { get }
    init(_ v: UInt64)
}

extension Numbered {
    @inlinable public init(integerLiteral v: UInt64) { self.init(v) }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
    /// The one after this.
    @inlinable public var next: Self { Self(value + 1) }
    public var description: String { String(value) }
}

public struct Height: Numbered {
    public var value: UInt64
    public init(_ v: UInt64) { value = v }
}

/// A PBFT view number: who leads (with the epoch) and which round of votes a message
/// belongs to. Its own type, so a view is never taken for a height, an epoch or a count.
public struct View: Numbered {
    public var value: UInt64
    public init(_ v: UInt64) { value = v }
    public static let max = View(.max)
}

/// Global position of an event in the log, from 0.
public struct SequenceNumber: Numbered {
    public var value: UInt64
    public init(_ v: UInt64) { value = v }
}

/// Chain ids are short ASCII names, stored zero-padded to 32 bytes so the envelope
/// keeps a fixed layout.
public struct ChainID: Hashable, Sendable, CustomStringConvertible {
    public let raw: Bytes32
    public let name: String

    public init(_ name: String) throws(DecodeError) {
        let u = Array(name.utf8)
        guard !u.isEmpty, u.count <= 32 else {
            throw .invalidValue(field: "chain id", reason: "must be 1 to 32 characters")
        }
        guard u.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 46 || $0 == 95 }) else {
            throw .invalidValue(field: "chain id", reason: "only a-z, 0-9, '.', '-' and '_' are allowed")
        }
        self.name = name
        raw = Bytes32(u + [UInt8](repeating: 0, count: 32 - u.count))
    }

    public init(raw: Bytes32) throws(DecodeError) {
        let b = raw.bytes
        let n = b.firstIndex(of: 0) ?? 32
        guard b[n...].allSatisfy({ $0 == 0 }) else {
            throw .invalidValue(field: "chain id", reason: "bytes after the terminating zero")
        }
        try self.init(String(decoding: b[..<n], as: UTF8.self))
    }

    public var description: String { name }
}
