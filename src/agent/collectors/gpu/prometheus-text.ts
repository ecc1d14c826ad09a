/**
 * The Prometheus text exposition format, as far as a scrape of an exporter needs it (pure): one
 * sample per line, `name{label="value",…} value [timestamp]`, `#` lines skipped, label values
 * with `\\`, `\"` and `\n` escapes. A line that cannot be read is counted, never guessed.
 */

export interface TextSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedExposition {
  samples: TextSample[];
  /** Lines that were not comments, blank or readable samples. */
  unreadable: number;
}

function parseValue(text: string): number | undefined {
  switch (text) {
    case 'NaN':
      return Number.NaN;
    case '+Inf':
    case 'Inf':
      return Number.POSITIVE_INFINITY;
    case '-Inf':
      return Number.NEGATIVE_INFINITY;
  }
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  return Number(text);
}

/** Parses one sample line; undefined when it is not one. */
export function parseSampleLine(line: string): TextSample | undefined {
  const nameMatch = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  if (!nameMatch) return undefined;
  const name = nameMatch[1]!;
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      const labelMatch = /^([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"/.exec(line.slice(i));
      if (!labelMatch) return undefined;
      i += labelMatch[0].length;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) return undefined;
        if (c === '\\') {
          const e = line[i + 1];
          value += e === 'n' ? '\n' : (e ?? '');
          i += 2;
          continue;
        }
        if (c === '"') {
          i++;
          break;
        }
        value += c;
        i++;
      }
      labels[labelMatch[1]!] = value;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const value = parseValue(rest[0] ?? '');
  if (value === undefined) return undefined;
  return { name, labels, value };
}

export function parseExposition(text: string): ParsedExposition {
  const samples: TextSample[] = [];
  let unreadable = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const sample = parseSampleLine(line);
    if (sample) samples.push(sample);
    else unreadable++;
  }
  return { samples, unreadable };
}
