/** Where a command writes; injected so commands can be tested without a process. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
}

export const processIo: CliIo = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
  stdout: process.stdout,
  stderr: process.stderr,
};
