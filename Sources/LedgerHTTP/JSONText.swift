import LedgerNode
import LedgerViews

extension JSONText {
    /// `{"receipts":[{"code":…,"error":…,"height":…,"id":…,"sequence":…,"status":…},…]}`
    public static func receipts(_ rs: [Receipt]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16 + rs.count * 160)
        out += Array(#"{"receipts":["#.utf8)
        for (i, r) in rs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += Array(#"{"code":"#.utf8)
            if let c = r.code { string(c, into: &out) } else { out += Array("null".utf8) }
            out += Array(#","error":"#.utf8)
            if let e = r.error { string(e, into: &out) } else { out += Array("null".utf8) }
            out += Array(#","height":"#.utf8)
            out += Array((r.height.map { String($0.value) } ?? "null").utf8)
            out += Array(#","id":"#.utf8)
            if let id = r.id { string(id.hex, into: &out) } else { out += Array("null".utf8) }
            out += Array(#","sequence":"#.utf8)
            out += Array((r.sequence.map { String($0.value) } ?? "null").utf8)
            out += Array(#","status":"#.utf8)
            string(r.status.rawValue, into: &out)
            out.append(UInt8(ascii: "}"))
        }
        out += Array("]}".utf8)
        return out
    }

}
