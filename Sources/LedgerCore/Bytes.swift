/// Total decoding of byte strings: every read checks bounds and returns a typed error.
/// All integers are big-endian; variable-length fields carry a length prefix whose
/// maximum is stated by the caller, so no field can claim more than its limit.
public enum DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(field: String, needed: Int, available: Int)
    case tooLong(field: String, length: Int, max: Int)
    case trailingBytes(count: Int)
    case invalidUTF8(field: String)
    case unsupportedVersion(field: String, version: UInt16)
    case unknownKind(UInt16)
    case invalidValue(field: String, reason: String)

    public var description: String {
        switch self {
        case let .truncated(f, n, a): "truncated \(f): needs \(n) bytes, \(a) available"
        case let .tooLong(f, l, m): "\(f) is \(l) long, limit \(m)"
        case let .trailingBytes(c): "\(c) trailing bytes after the record"
        case let .invalidUTF8(f): "\(f) is not valid UTF-8"
        case let .unsupportedVersion(f, v): "unsupported \(f) version \(v)"
        case let .unknownKind(k): "unknown event kind \(k)"
        case let .invalidValue(f, r): "invalid \(f): \(r)"
        }
    }
}

public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    public mutating func raw<C: Collection>(_ b: C) where C.Element == UInt8 { bytes.append(contentsOf: b) }
    public mutating func b32(_ v: Bytes32) { v.append(to: &bytes) }
    public mutating func b32<K>(_ v: Identifier<K>) { v.raw.append(to: &bytes) }
    public mutating func b64(_ v: Bytes64) { v.append(to: &bytes) }

    /// Length-prefixed (u16) bytes. The caller's limit was checked when the value was built.
    public mutating func blob16<C: Collection>(_ b: C) where C.Element == UInt8 {
        precondition(b.count <= Int(UInt16.max), "blob16 over 65535 bytes")
        u16(UInt16(b.count)); raw(b)
    }
    public mutating func blob32<C: Collection>(_ b: C) where C.Element == UInt8 {
        precondition(b.count <= Int(UInt32.max), "blob32 over 4 GiB")
        u32(UInt32(b.count)); raw(b)
    }
    public mutating func string(_ s: String) { blob16(Array(s.utf8)) }
}

public struct ByteReader: Sendable {
    public let bytes: ArraySlice<UInt8>
    public private(set) var offset: Int

    public init(_ bytes: [UInt8]) { self.bytes = bytes[...]; offset = bytes.startIndex }
    public init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes; offset = bytes.startIndex }

    public var remaining: Int { bytes.endIndex - offset }

    @inline(__always)
    mutating func take(_ n: Int, _ field: String) throws(DecodeError) -> ArraySlice<UInt8> {
        guard n >= 0, remaining >= n else { throw .truncated(field: field, needed: n, available: remaining) }
        defer { offset += n }
        return bytes[offset ..< offset + n]
    }

    public mutating func u8(_ f: String) throws(DecodeError) -> UInt8 { try take(1, f).first! }
    public mutating func u16(_ f: String) throws(DecodeError) -> UInt16 {
        let s = try take(2, f)
        return s.withUnsafeBytes { UInt16(bigEndian: $0.loadUnaligned(as: UInt16.self)) }
    }
    public mutating func u32(_ f: String) throws(DecodeError) -> UInt32 {
        let s = try take(4, f)
        return s.withUnsafeBytes { UInt32(bigEndian: $0.loadUnaligned(as: UInt32.self)) }
    }
    public mutating func u64(_ f: String) throws(DecodeError) -> UInt64 {
        let s = try take(8, f)
        return s.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) }
    }
    public mutating func b32(_ f: String) throws(DecodeError) -> Bytes32 { Bytes32(try take(32, f)) }
    /// A 32-byte identifier of the kind the caller expects.
    public mutating func id<K>(_ f: String) throws(DecodeError) -> Identifier<K> { Identifier(try b32(f)) }
    public mutating func b64(_ f: String) throws(DecodeError) -> Bytes64 { Bytes64(try take(64, f)) }
    public mutating func raw(_ n: Int, _ f: String) throws(DecodeError) -> ArraySlice<UInt8> { try take(n, f) }

    public mutating func blob16(_ f: String, max: Int) throws(DecodeError) -> [UInt8] {
        let n = Int(try u16(f))
        guard n <= max else { throw .tooLong(field: f, length: n, max: max) }
        return Array(try take(n, f))
    }
    public mutating func blob32(_ f: String, max: Int) throws(DecodeError) -> [UInt8] {
        let n = Int(try u32(f))
        guard n <= max else { throw .tooLong(field: f, length: n, max: max) }
        return Array(try take(n, f))
    }
    public mutating func string(_ f: String, max: Int) throws(DecodeError) -> String {
        let b = try blob16(f, max: max)
        guard let s = String(validating: b, as: UTF8.self) else { throw .invalidUTF8(field: f) }
        return s
    }
    public mutating func count(_ f: String, max: Int) throws(DecodeError) -> Int {
        let n = Int(try u16(f))
        guard n <= max else { throw .tooLong(field: f, length: n, max: max) }
        return n
    }
    public func end() throws(DecodeError) {
        guard remaining == 0 else { throw .trailingBytes(count: remaining) }
    }
}

public enum Hex {
    public static func encode<C: Collection>(_ b: C) -> String where C.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](); out.reserveCapacity(b.count * 2)
        for x in b { out.append(digits[Int(x >> 4)]); out.append(digits[Int(x & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { return nil }
        func nib(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var out = [UInt8](); out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let h = nib(u[i]), let l = nib(u[i + 1]) else { return nil }
            out.append(h << 4 | l); i += 2
        }
        return out
    }
}
