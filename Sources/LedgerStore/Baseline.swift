import CLMDB
import Foundation

/// Benchmark baseline only: raw LMDB appends with no ChaosLedger code in the loop —
/// the same bytes, sequential 8-byte keys with MDB_APPEND, `perTxn` records per durable
/// commit. Returns the elapsed seconds.
public enum RawLMDBBaseline {
    public static func append(dir: String, records: [[UInt8]], perTxn: Int) throws(StoreError) -> Double {
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var env: OpaquePointer?
        func check(_ rc: Int32, _ op: String) throws(StoreError) {
            if rc != 0 { throw .io(operation: op, path: dir, code: rc, message: String(cString: mdb_strerror(rc))) }
        }
        try check(mdb_env_create(&env), "mdb_env_create")
        defer { mdb_env_close(env) }
        try check(mdb_env_set_mapsize(env, 4 << 30), "mdb_env_set_mapsize")
        try check(mdb_env_set_maxdbs(env, 2), "mdb_env_set_maxdbs")
        try check(mdb_env_open(env, dir, UInt32(MDB_NOTLS), 0o644), "mdb_env_open")
        var dbi: MDB_dbi = 0
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
        try check(mdb_dbi_open(txn, "raw", UInt32(MDB_CREATE), &dbi), "mdb_dbi_open")
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
        let t0 = DispatchTime.now().uptimeNanoseconds
        var seq: UInt64 = 0
        var i = 0
        while i < records.count {
            try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
            for r in records[i ..< min(i + perTxn, records.count)] {
                var key = seq.bigEndian
                var value = r
                let rc = withUnsafeMutableBytes(of: &key) { kp in
                    value.withUnsafeMutableBytes { vp in
                        var k = MDB_val(mv_size: 8, mv_data: kp.baseAddress)
                        var v = MDB_val(mv_size: vp.count, mv_data: vp.baseAddress)
                        return mdb_put(txn, dbi, &k, &v, UInt32(MDB_APPEND))
                    }
                }
                if rc != 0 { mdb_txn_abort(txn); try check(rc, "mdb_put") }
                seq += 1
            }
            try check(mdb_txn_commit(txn), "mdb_txn_commit")
            i += perTxn
        }
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}
