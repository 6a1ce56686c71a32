/** compressor: gzip, brotli or zstd for responses the client accepts, by content type and size. */
import { z } from 'zod';

export const COMPRESSION_ALGORITHMS = ['br', 'zstd', 'gzip'] as const;

export const compressorConfig = z.object({
  /** In order of preference, among those the client's Accept-Encoding allows. */
  algorithms: z.array(z.enum(COMPRESSION_ALGORITHMS)).min(1).default(['br', 'zstd', 'gzip']),
  /** Responses shorter than this (by Content-Length) are sent as they are. */
  min_content_length: z.number().int().min(0).default(30),
  content_types: z.array(z.string().min(1)).default([
    'text/html', 'text/plain', 'text/css', 'text/xml', 'text/javascript', 'application/javascript',
    'application/json', 'application/xml', 'application/xhtml+xml', 'image/svg+xml',
  ]),
  /** Leave responses with an ETag alone (a strong ETag names the uncompressed bytes). */
  disable_on_etag_header: z.boolean().default(false),
  /** Compression level (gzip 1–9; brotli quality 0–11 is derived; zstd 1–19). */
  level: z.number().int().min(1).max(9).default(5),
}).strict();

export type CompressorConfig = z.output<typeof compressorConfig>;
