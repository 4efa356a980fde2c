/**
 * A tiny authoritative DNS server over UDP, enough for the demo: it answers
 * A queries for the names it holds with their current addresses (TTL 1 s),
 * answers other record types of those names with no records (NODATA), and
 * every other name with NXDOMAIN. It plays the part of a service registry
 * that publishes through DNS, as Kubernetes does for a headless Service, so
 * the demo needs nothing installed: both the grpc-tower client (`dns()`
 * from `@grpc-tower/discover`) and a plain grpc-js client (`dns://` target)
 * read the same records from it.
 *
 * The wire format is RFC 1035 §4: a 12-byte header, the question, then
 * answer records. Only what resolvers send is handled: one question,
 * standard queries; EDNS options in the additional section are ignored.
 */
import { type Socket, createSocket } from 'node:dgram';
import { isIPv4 } from 'node:net';

const TYPE_A = 1;
const CLASS_IN = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_NOTIMP = 4;
const RCODE_FORMERR = 1;

/** A running demo DNS server. */
export class DemoDns {
  readonly #socket: Socket;
  readonly #records = new Map<string, readonly string[]>();
  /** The address resolvers use, `127.0.0.1:<port>`. */
  readonly address: string;
  /** Queries answered so far. */
  queries = 0;

  private constructor(socket: Socket, address: string) {
    this.#socket = socket;
    this.address = address;
    socket.on('message', (msg, rinfo) => {
      const reply = this.#answer(msg);
      if (reply !== undefined) socket.send(reply, rinfo.port, rinfo.address);
    });
  }

  /** Starts the server on `host` and a free port. */
  static start(host = '127.0.0.1'): Promise<DemoDns> {
    return new Promise((resolve, reject) => {
      const socket = createSocket('udp4');
      socket.once('error', reject);
      socket.bind(0, host, () => {
        socket.off('error', reject);
        socket.on('error', () => undefined); // a malformed peer must not crash the demo
        resolve(new DemoDns(socket, `${host}:${socket.address().port}`));
      });
    });
  }

  /** Replaces the A records of `name`. */
  set(name: string, ips: readonly string[]): void {
    for (const ip of ips) if (!isIPv4(ip)) throw new Error(`DemoDns: ${ip} is not an IPv4 address`);
    this.#records.set(name.toLowerCase(), [...ips]);
  }

  /** The A records of `name`. */
  get(name: string): readonly string[] {
    return this.#records.get(name.toLowerCase()) ?? [];
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  #answer(msg: Buffer): Buffer | undefined {
    if (msg.length < 12) return undefined;
    const id = msg.readUInt16BE(0);
    const flags = msg.readUInt16BE(2);
    if (flags & 0x8000) return undefined; // a response, not a query
    const opcode = (flags >> 11) & 0xf;
    const qdcount = msg.readUInt16BE(4);
    const rd = flags & 0x0100;
    const header = (rcode: number, answers: number, question: Buffer): Buffer => {
      const h = Buffer.alloc(12);
      h.writeUInt16BE(id, 0);
      h.writeUInt16BE(0x8000 | (opcode << 11) | 0x0400 | rd | rcode, 2); // QR, AA
      h.writeUInt16BE(question.length > 0 ? 1 : 0, 4);
      h.writeUInt16BE(answers, 6);
      return Buffer.concat([h, question]);
    };
    if (opcode !== 0) return header(RCODE_NOTIMP, 0, Buffer.alloc(0));
    if (qdcount !== 1) return header(RCODE_FORMERR, 0, Buffer.alloc(0));
    // the question: a name as length-prefixed labels, then type and class
    const labels: string[] = [];
    let at = 12;
    for (;;) {
      const len = msg[at];
      if (len === undefined || len > 63) return header(RCODE_FORMERR, 0, Buffer.alloc(0));
      at += 1;
      if (len === 0) break;
      if (at + len > msg.length) return header(RCODE_FORMERR, 0, Buffer.alloc(0));
      labels.push(msg.toString('latin1', at, at + len));
      at += len;
    }
    if (at + 4 > msg.length) return header(RCODE_FORMERR, 0, Buffer.alloc(0));
    const qtype = msg.readUInt16BE(at);
    const qclass = msg.readUInt16BE(at + 2);
    const question = msg.subarray(12, at + 4);
    const ips = this.#records.get(labels.join('.').toLowerCase());
    this.queries++;
    if (ips === undefined) return header(RCODE_NXDOMAIN, 0, question);
    if (qtype !== TYPE_A || qclass !== CLASS_IN) return header(0, 0, question); // NODATA
    const answers = ips.map((ip) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(TYPE_A, 2);
      rr.writeUInt16BE(CLASS_IN, 4);
      rr.writeUInt32BE(1, 6); // TTL 1 s
      rr.writeUInt16BE(4, 10);
      for (const [i, octet] of ip.split('.').entries()) rr.writeUInt8(Number(octet), 12 + i);
      return rr;
    });
    return Buffer.concat([header(0, answers.length, question), ...answers]);
  }
}
