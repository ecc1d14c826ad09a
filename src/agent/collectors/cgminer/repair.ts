/**
 * Reading CGMiner-family API replies as miners really write them. The firmware builds JSON by
 * hand (sprintf), so replies in the field carry: a trailing NUL, a comma before a closing bracket
 * (`,}` `,]`), a missing comma between objects of an array (bmminer's `}{` in `stats`), a comma
 * opening an array (`[,{`), bare `inf` / `nan` where a division went wrong, raw control
 * characters inside strings, and, when the API thread is busy or the buffer was too small, a reply
 * cut short. Real parsers (pyasic, the fleet tools) repair the first kinds and give up on the
 * last; so does this: a truncated reply is reported, never completed by guessing.
 */

/** What was repaired, for the agent's health metrics and logs. */
export type Repair =
  | 'trailing_nul'
  | 'trailing_comma'
  | 'leading_comma'
  | 'missing_comma'
  | 'non_finite'
  | 'control_character'
  | 'bad_escape'
  | 'concatenated';

export type RepairResult =
  | { ok: true; value: unknown; repairs: Repair[] }
  | { ok: false; reason: 'truncated' | 'malformed' | 'empty'; message: string };

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const NON_FINITE = /^[+-]?(inf|infinity|nan)$/i;

/** Strips what firmware puts after the reply: NULs and whitespace. */
function stripTail(text: string): { text: string; nul: boolean } {
  let end = text.length;
  let nul = false;
  while (end > 0) {
    const c = text.charCodeAt(end - 1);
    if (c === 0) nul = true;
    else if (!WS.has(c)) break;
    end--;
  }
  // A NUL may also end the reply with bytes after it (a reused buffer): the reply is what precedes it.
  const first = text.indexOf('\0');
  if (first >= 0 && first < end) {
    nul = true;
    end = first;
  }
  return { text: text.slice(0, end), nul };
}

/**
 * Parses a CGMiner-family reply, repairing what real firmware gets wrong. Top-level objects written
 * back to back (`{…}{…}`) are merged, the first key winning.
 */
export function parseCgminerReply(raw: string): RepairResult {
  const { text, nul } = stripTail(raw);
  if (text.trim() === '') return { ok: false, reason: 'empty', message: 'the miner answered nothing' };
  try {
    return { ok: true, value: JSON.parse(text), repairs: nul ? ['trailing_nul'] : [] };
  } catch {
    // repaired below
  }
  const repairs = new Set<Repair>(nul ? ['trailing_nul'] : []);
  const out: string[] = [];
  /** Open brackets: '{' or '['. */
  const stack: string[] = [];
  let topLevelValues = 0;
  let i = 0;
  const n = text.length;
  const nextSignificant = (from: number): number => {
    let j = from;
    while (j < n && WS.has(text.charCodeAt(j))) j++;
    return j;
  };
  while (i < n) {
    const ch = text[i]!;
    if (ch === '"') {
      // A string: copy it, escaping raw control characters and invalid escapes.
      let j = i + 1;
      let s = '"';
      let closed = false;
      while (j < n) {
        const c = text[j]!;
        const code = c.charCodeAt(0);
        if (c === '\\') {
          const e = text[j + 1];
          if (e === undefined) break;
          if ('"\\/bfnrt'.includes(e)) s += c + e;
          else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(j + 2, j + 6))) s += text.slice(j, j + 6);
          else {
            s += `\\\\${e === '"' ? '\\"' : e}`;
            repairs.add('bad_escape');
            j += 2;
            continue;
          }
          j += e === 'u' ? 6 : 2;
          continue;
        }
        if (c === '"') {
          closed = true;
          s += '"';
          j++;
          break;
        }
        if (code < 0x20) {
          s += `\\u${code.toString(16).padStart(4, '0')}`;
          repairs.add('control_character');
        } else s += c;
        j++;
      }
      if (!closed) return { ok: false, reason: 'truncated', message: 'the reply ends inside a string' };
      out.push(s);
      i = j;
      continue;
    }
    if (ch === '{' || ch === '[') {
      if (stack.length === 0) {
        if (topLevelValues > 0) {
          out.push(',');
          repairs.add('concatenated');
        }
        topLevelValues++;
      }
      stack.push(ch);
      out.push(ch);
      i++;
      if (ch === '[') {
        const j = nextSignificant(i);
        if (text[j] === ',') {
          repairs.add('leading_comma');
          i = j + 1;
        }
      }
      continue;
    }
    if (ch === '}' || ch === ']') {
      const open = stack.pop();
      if (open !== (ch === '}' ? '{' : '['))
        return { ok: false, reason: 'malformed', message: `unbalanced "${ch}" at byte ${i}` };
      out.push(ch);
      i++;
      // `}{` or `][` inside an array: the firmware forgot the comma between two elements.
      const j = nextSignificant(i);
      if (stack.at(-1) === '[' && (text[j] === '{' || text[j] === '[')) {
        out.push(',');
        repairs.add('missing_comma');
      }
      continue;
    }
    if (ch === ',') {
      const j = nextSignificant(i + 1);
      if (text[j] === '}' || text[j] === ']') {
        repairs.add('trailing_comma');
        i = j;
        continue;
      }
      if (text[j] === ',') {
        // `,,`: an empty element; keep one comma.
        repairs.add('trailing_comma');
        i = j;
        continue;
      }
      out.push(ch);
      i++;
      continue;
    }
    if (/[A-Za-z+\-0-9.]/.test(ch)) {
      let j = i;
      while (j < n && /[A-Za-z0-9+\-.]/.test(text[j]!)) j++;
      const word = text.slice(i, j);
      if (NON_FINITE.test(word)) {
        out.push('null');
        repairs.add('non_finite');
      } else out.push(word);
      i = j;
      continue;
    }
    out.push(ch);
    i++;
  }
  if (stack.length > 0)
    return {
      ok: false,
      reason: 'truncated',
      message: `the reply ends with ${stack.length} bracket(s) open`,
    };
  const repaired = out.join('');
  try {
    const value: unknown =
      topLevelValues > 1 ? mergeObjects(JSON.parse(`[${repaired}]`)) : JSON.parse(repaired);
    return { ok: true, value, repairs: [...repairs] };
  } catch (error) {
    return { ok: false, reason: 'malformed', message: (error as Error).message.slice(0, 200) };
  }
}

function mergeObjects(values: unknown[]): unknown {
  const merged: Record<string, unknown> = {};
  for (const v of values) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) continue;
    for (const [k, x] of Object.entries(v)) if (!(k in merged)) merged[k] = x;
  }
  return merged;
}

/**
 * Tells, chunk by chunk, when a reply is complete: a NUL arrived, or the first top-level JSON value
 * closed. Firmware that keeps the socket open after answering is then not waited on until the timeout.
 */
export class ReplyCompletion {
  #depth = 0;
  #started = false;
  #inString = false;
  #escape = false;
  #done = false;

  /** Feeds the next bytes; true once the reply is complete. */
  feed(chunk: Uint8Array): boolean {
    if (this.#done) return true;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (c === 0) {
        this.#done = true;
        return true;
      }
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (c === 0x5c) this.#escape = true;
        else if (c === 0x22) this.#inString = false;
        continue;
      }
      if (c === 0x22) this.#inString = true;
      else if (c === 0x7b || c === 0x5b) {
        this.#depth++;
        this.#started = true;
      } else if (c === 0x7d || c === 0x5d) {
        this.#depth--;
        if (this.#started && this.#depth <= 0) {
          // Firmware that writes `{…}{…}` sends both in one write; what is in this chunk is kept.
          this.#done = true;
          return true;
        }
      }
    }
    return false;
  }
}
