/**
 * A DNS server for tests (UDP on 127.0.0.1, dns-packet): answers A and AAAA queries from a table
 * that the test changes (IPv6 addresses are AAAA records), with the TTL it sets; a known name
 * without a record of the asked type gets an empty NOERROR, an unknown one NXDOMAIN.
 * Counts queries per name, so a test can see when a client asked again.
 */
import dgram from 'node:dgram';
import * as packet from 'dns-packet';

export class TestDnsServer {
  private readonly socket = dgram.createSocket('udp4');
  /** name → addresses (IPv4: A, IPv6: AAAA) and TTL (seconds). */
  readonly records = new Map<string, { addresses: string[]; ttl: number }>();
  readonly queries = new Map<string, number>();
  port = 0;

  async start(): Promise<void> {
    this.socket.on('message', (msg, rinfo) => this.answer(msg, rinfo));
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', () => resolve()));
    this.port = this.socket.address().port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private answer(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let query: packet.Packet;
    try {
      query = packet.decode(msg);
    } catch {
      return;
    }
    const q = query.questions?.[0];
    if (!q) return;
    const name = q.name.toLowerCase();
    this.queries.set(name, (this.queries.get(name) ?? 0) + 1);
    const record = this.records.get(name);
    const ofType = (a: string) => (q.type === 'AAAA' ? a.includes(':') : q.type === 'A' && !a.includes(':'));
    const answers = (record?.addresses ?? []).filter(ofType).map((data): packet.Answer => ({ type: q.type as 'A' | 'AAAA', name: q.name, ttl: record!.ttl, class: 'IN', data }));
    const reply = packet.encode({
      id: query.id, type: 'response', flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (record ? 0 : 3), // rcode 3: NXDOMAIN
      questions: query.questions, answers,
    });
    this.socket.send(reply, rinfo.port, rinfo.address);
  }

  close(): void {
    this.socket.close();
  }
}
