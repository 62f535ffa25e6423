// DuckDB side of bench/egress-hunt-vs-duckdb.sh: the exfil-volume rule
// over a Defender JSON Lines file with read_json, printed as JSON Lines
// with the KQL column names, in wardgate's order (TotalBytesSent desc,
// then Timestamp, DeviceName, RemoteUrl ascending).
// Usage: node duckdb-hunt.mjs FILE THREADS PREFIX
import { DuckDBInstance } from '@duckdb/node-api';

const [file, threads = '2', prefix = 'HOSP-IOT-'] = process.argv.slice(2);
const inst = await DuckDBInstance.create(':memory:', { threads });
const conn = await inst.connect();
const q = `
SELECT strftime(time_bucket(INTERVAL 1 HOUR, "Timestamp"), '%Y-%m-%dT%H:%M:%SZ') AS ts,
       DeviceName, coalesce(RemoteUrl, '') AS RemoteUrl,
       sum(SentBytes)::BIGINT AS TotalBytesSent, count(*)::BIGINT AS ConnectionCount
FROM read_json('${file.replaceAll("'", "''")}', format = 'newline_delimited',
  columns = {Timestamp: 'TIMESTAMP', DeviceName: 'VARCHAR', ActionType: 'VARCHAR', RemoteIP: 'VARCHAR',
             RemotePort: 'BIGINT', RemoteUrl: 'VARCHAR', RemoteIPType: 'VARCHAR',
             InitiatingProcessFileName: 'VARCHAR', SentBytes: 'BIGINT', ReceivedBytes: 'BIGINT'})
WHERE starts_with(DeviceName, '${prefix}') AND ActionType = 'ConnectionSuccess' AND RemoteIPType = 'Public'
GROUP BY ALL
HAVING sum(SentBytes) > 5000000
ORDER BY TotalBytesSent DESC, ts, DeviceName, RemoteUrl`;
const reader = await conn.runAndReadAll(q);
const out = [];
for (const r of reader.getRows()) {
  out.push(JSON.stringify({ Timestamp: r[0], DeviceName: r[1], RemoteUrl: r[2], TotalBytesSent: Number(r[3]), ConnectionCount: Number(r[4]) }));
}
process.stdout.write(out.length ? out.join('\n') + '\n' : '');
