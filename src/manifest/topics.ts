/**
 * Topic names and patterns, shared by the manifest, the policy and the hub. A topic is a
 * dotted name (`thought.added`); a pattern is a topic, a prefix ending in `.*` (`thought.*`:
 * every topic below `thought.`, at any depth), or `*` (every topic).
 */

export const MAX_TOPIC_LENGTH = 256;
/** A topic or pattern, as the manifest, the policy and `subscribe` write it. */
const TOPIC_PATTERN_SOURCE = '^(?:\\*|[A-Za-z0-9_-]+(?:\\.[A-Za-z0-9_-]+)*(?:\\.\\*)?)$';
const SHAPE = new RegExp(TOPIC_PATTERN_SOURCE);

export function isTopicPattern(s: string): boolean {
  return s.length <= MAX_TOPIC_LENGTH && SHAPE.test(s);
}

/** Does a subscription pattern (`a.b`, `a.*`, `*`) match a topic? */
export function topicMatches(pattern: string, topic: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) return topic.startsWith(pattern.slice(0, -1));
  return pattern === topic;
}

/**
 * Does a declared pattern cover `target` (a topic, or a pattern): is everything `target`
 * matches also matched by `declared`? `a.*` covers `a.b`, `a.b.*` and `a.*`; `a.b` covers
 * only `a.b`; `*` covers everything, and only `*` covers `*`.
 */
export function topicCovers(declared: string, target: string): boolean {
  if (declared === '*') return true;
  if (target === '*') return false;
  if (declared.endsWith('.*')) return target.startsWith(declared.slice(0, -1));
  return declared === target;
}
