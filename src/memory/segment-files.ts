import { chownSync, closeSync, copyFileSync, fchownSync, ftruncateSync, openSync } from 'node:fs';

/**
 * The file operations on segments, as root: a new file only root can open until its ACL is
 * set (`wx`, 0600), owned by root in the owning plugin's group (whose segment it is, seen from
 * the host), of `size` bytes (sparse: pages are charged when touched).
 */
export function createSegmentFile(file: string, gid: number, size: number): void {
  const fd = openSync(file, 'wx', 0o600);
  try {
    fchownSync(fd, 0, gid);
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

/** Change a segment file's size; its first min(old, new) bytes stay. */
export function truncateSegmentFile(file: string, size: number): void {
  const fd = openSync(file, 'r+');
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

/** A copy of a segment file in a new inode, owned like it (setReadOnly renames it over the original). */
export function copySegmentFile(file: string, copy: string, gid: number): void {
  copyFileSync(file, copy);
  chownSync(copy, 0, gid);
}
