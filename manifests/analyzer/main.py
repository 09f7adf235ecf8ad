"""analyzer: token counts, digests and the most frequent words of every thought.

analyze_results() asks the `thoughts` plugin for its thoughts, then `tokenizer` and
`hasher` for each one (concurrently), and answers

    {"thoughts": [{"text": ..., "tokens": <token count>, "digest": <hex digest>}, ...],
     "topWords": [[word, count], ...],   # the 5 most frequent, ties alphabetical
     "added": <thought.added events from the thoughts plugin since start>}
"""
import asyncio
import collections

from logomesh import LogoMeshError, Plugin

plugin = Plugin()
TIMEOUT = 5.0
# At most this many calls to tokenizer and hasher in flight at once.
PARALLEL = 32

added = 0


@plugin.on("thought.added")
async def thought_added(data, event):
    # event.sender is set by the hub: who really sent it. Only `thoughts` adds thoughts;
    # the same topic from anyone else (or a "from" inside the data) is not counted.
    global added
    if event.sender == "thoughts":
        added += 1


def top_words(token_lists, n=5):
    """The n most frequent words (tokens with a letter or digit, lowercased); equal counts
    in alphabetical order."""
    counts = collections.Counter(
        t.lower() for tokens in token_lists for t in tokens if isinstance(t, str) and any(c.isalnum() for c in t)
    )
    return [[word, count] for word, count in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:n]]


@plugin.method
async def analyze_results(top=5):
    listed = await plugin.call("thoughts.get_thoughts", {}, timeout=TIMEOUT)
    texts = listed.get("thoughts") if isinstance(listed, dict) else None
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise LogoMeshError("LM_PLUGIN_ERROR", "thoughts.get_thoughts did not answer {\"thoughts\": [text, ...]}",
                            {"answer": listed})
    limit = asyncio.Semaphore(PARALLEL)

    async def analyze(text):
        async with limit:
            tokenized, digested = await asyncio.gather(
                plugin.call("tokenizer.tokenize", {"text": text}, timeout=TIMEOUT),
                plugin.call("hasher.digest", {"text": text}, timeout=TIMEOUT),
            )
        return text, tokenized["tokens"], digested["digest"]

    analyzed = await asyncio.gather(*(analyze(t) for t in texts))
    return {
        "thoughts": [{"text": text, "tokens": len(tokens), "digest": digest} for text, tokens, digest in analyzed],
        "topWords": top_words((tokens for _, tokens, _ in analyzed), top),
        "added": added,
    }


if __name__ == "__main__":
    plugin.run()
