// Reading an input file (a topology, a node snapshot) with bounds: a regular file only, at most `maxBytes`.
// A FIFO or a device at the path (`/dev/zero`, a pipe nobody writes to) would block the reader or never end; the
// file is opened non-blocking and checked on the opened descriptor, so it cannot be swapped in between.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/** The largest input file read (a topology of 10,000 pools is about 2 MiB). */
export const MAX_INPUT_BYTES = 16 * 1024 * 1024;

/** Why a file was not read, in words for an error message (no content of the file). */
export class InputFileError extends Error {
  override name = 'InputFileError';
}

/** What went wrong reading an input file, for a message: our own words, or the errno code. */
export function inputFileProblem(e: unknown): string {
  if (e instanceof InputFileError) return e.message;
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? (e as Error).message})`;
}

/** The file's text (UTF-8). Throws InputFileError for what is not a regular file or is too large; errno errors as they come. */
export async function readBoundedFile(path: string, maxBytes = MAX_INPUT_BYTES): Promise<string> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      const what = st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isDirectory() ? 'a directory' : st.isSocket() ? 'a socket' : 'something else';
      throw new InputFileError(`is ${what}, not a regular file`);
    }
    if (st.size > maxBytes) throw new InputFileError(`is ${st.size} bytes, over the limit of ${maxBytes}`);
    // Read until the end, counting: a file that grew since the stat is still caught.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024);
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, total);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) throw new InputFileError(`is over the limit of ${maxBytes} bytes`);
      chunks.push(chunk.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    await fh.close();
  }
}
