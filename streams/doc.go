// Package streams is logcap's wire format and its reference: what a message in a logcap
// stream is, so that `nats` CLI users and other consumers can read it, and the code that
// writes and reads it (the monitors, processors, sinks and replay all go through here).
// It also holds the stream and consumer specs, the conditional publisher and the fetch.
// The format is public: extend it, never change what a name means.
//
// # Streams and subjects
//
//   - LOGS, subjects logs.<kind>.<host>.<source>: what the monitors captured. kind is "file",
//     "docker" or "kubernetes" (KindFile, KindDocker, KindKubernetes); host the node name;
//     source the file path, the container name, or <namespace>/<pod>/<container>/<restart>/<pod
//     uid> (PodRef.Source) (SourceSubject).
//   - A processor's derived stream (PARSED for processor "parsed"), subjects
//     <lower(name)>.<kind>.<host>.<source>, plus <route>.… for each route step's target.
//   - DEADLETTER, subjects deadletter.<consumer>: what a stage gave up on (DeadLetter).
//
// Host and source are one NATS token each, readable and reversible (EncodeToken,
// DecodeToken): '.', '*', '>', white space, control bytes, invalid UTF-8 and '%' become %XX
// (upper-case hex), everything else (even '/') stays; the empty string is "%". So
// /var/log/app.log on node web-1 is logs.file.web-1./var/log/app%2Elog.
//
// # Payload: a chunk, not a line
//
// One message carries one or more complete entries of one source, contiguous and in order
// (Chunk): a lone line goes out at once, under load a chunk grows to max_chunk_bytes.
//
//   - File chunk: the file's bytes exactly as read, lines separated by '\n' (a "\r\n" file
//     keeps its '\r'); invalid UTF-8 and binary pass untouched.
//   - Docker chunk: lines as `docker logs --timestamps` prints them, `<RFC3339Nano> <line>\n`
//     (CutDockerTimestamp, ParseDockerLine), one Docker stream (stdout or stderr) per chunk.
//   - Kubernetes chunk: CRI lines, `<RFC3339Nano> <stdout|stderr> F <message>\n`, the
//     runtime's P parts joined; a part marked continued keeps tag P and its stream's next
//     entry continues it (ParseCRILine, AppendCRILine). Entries join per stream.
//   - Derived chunk: one per input chunk and output subject (DerivedMsg), lines+json (the
//     messages as lines, then an object per entry with the rest: FormatLinesJSON) or NDJSON
//     (one JSON document per entry: time, host, kind, source, stream, message, fields).
//
// An entry is one line unless Logcap-Entries says otherwise (Entries, EntriesRaw split every
// kind the same way).
//
// # Headers
//
// All chunks:
//
//	Nats-Msg-Id          deterministic id (Chunk.MsgID): f:<host>:<dev>:<ino>:<fingerprint>:<start offset>
//	                     for files (and :g<n> after the file's nth truncation, Chunk.FileMsg), d:<host>:<container id>:<stream>:<first ts ns>:<last ts ns>:<last-ts count>
//	                     for Docker, <input stream>:<seq>[:<route>] for derived chunks: a retried or
//	                     rebuilt publish is deduplicated, never stored twice
//	Logcap-Lines         number of entries (HdrLines)
//
// Raw (LOGS) chunks:
//
//	Logcap-Read-Time     when the monitor read the chunk, RFC 3339 nano
//	Logcap-Entries       entry lengths in bytes, comma-separated, when entries are not one line
//	                     each (multiline entries, split long lines); absent: one entry per '\n'
//	Logcap-Continued     indexes of entries that continue in the next (parts of a long line)
//
// File chunks: Logcap-Dev, Logcap-Ino, Logcap-Fp (file identity: device, inode, hex
// fingerprint of the first bytes) and Logcap-Offset, Logcap-End (the byte range [Offset,
// End) of the chunk in the file).
//
// Docker chunks: Logcap-Container (id), Logcap-Stream (stdout or stderr), Logcap-First-Ts
// and Logcap-Last-Ts (first and last entry timestamps), Logcap-Last-Ts-Count (records
// carrying Last-Ts published so far on that stream), Logcap-Pos-Stdout and
// Logcap-Pos-Stderr (each stream's resume position after the chunk, `<unix ns>:<count>`:
// FormatStreamPos), and the container's metadata: Logcap-Container-Name, Logcap-Image,
// Logcap-Compose-Project, Logcap-Compose-Service, Logcap-Label-<key> (DockerMetaHeader).
//
// Kubernetes chunks: the file chunk's headers (offsets in the runtime's file), and
// Logcap-K8s-Namespace, Logcap-K8s-Pod, Logcap-K8s-Pod-Uid, Logcap-K8s-Container,
// Logcap-K8s-Restart (PodRef.Header).
//
// Derived chunks: Logcap-Format: lines+json or ndjson; Logcap-Read-Time, Logcap-Container
// and Logcap-Image copied from the input chunk (IdentityHeaders).
//
// Dead letters: the original's headers (less Nats-*), and Logcap-Error, Logcap-Consumer,
// Logcap-Orig-Stream, Logcap-Orig-Subject, Logcap-Orig-Seq; id dl:<consumer>:<stream>:<seq>.
//
// # Positions
//
// The position is the stream. A source publishes its chunks one at a time, each conditional
// on the previous one (Nats-Expected-Last-Subject-Sequence, Publisher), so a subject has no
// gap and a second writer is fenced off (ErrFenced). A monitor resumes from the last message
// on its subject (LastMsg): a file's identity and Logcap-End, a container's Logcap-Pos-*.
//
// The KV bucket logcap_positions (PositionsBucket) is the file sources' fallback, for when
// retention removed a subject's messages, and their memory of which subject a renamed file
// belongs to: pos.<host>.<dev>.<ino> (PositionKey) holds a FilePosition as JSON
// ({"source", "fp", "end"}, and "gzip_done", "gzip_size" for a gzip file read as far as it
// goes); source.<host>.<name> (SourceMarkerKey) is present once a file source has started,
// so start_at applies to its first start only. sink.<name> (SinkPositionKey) holds an HTTP-family
// sink's SinkPosition ({"stream", "seq", "id", "consumer"}): its consumer's ack floor, recorded
// after each batch's acks, so that acks the server had not yet written when it was killed do
// not make the sink write those messages twice. Key tokens are escaped: bytes other than
// ASCII letters, digits, '-' and '_' as =XX.
package streams
