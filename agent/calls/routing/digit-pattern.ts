// Digit patterns for outbound numbers, in the notation PBX administrators already
// know from Asterisk extension patterns (without its leading `_`):
//   X any digit, Z 1-9, N 2-9, [15-7] one digit of a set (ranges allowed),
//   . one or more digits, ! zero or more digits; other digits and + match themselves.
// A pattern matches the whole dialled number.

export class DigitPatternError extends Error {
  readonly code = 'EPATTERN';
}

export interface DigitPattern {
  readonly source: string;
  matches(dialed: string): boolean;
}

/** Compiles a pattern; throws DigitPatternError saying what is wrong with it. */
export function compileDigitPattern(pattern: string): DigitPattern {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    switch (c) {
      case 'X':
      case 'x':
        re += '[0-9]';
        break;
      case 'Z':
      case 'z':
        re += '[1-9]';
        break;
      case 'N':
      case 'n':
        re += '[2-9]';
        break;
      case '.':
        if (i !== pattern.length - 1) throw new DigitPatternError(`"${pattern}": "." must be the last character`);
        re += '[0-9]+';
        break;
      case '!':
        if (i !== pattern.length - 1) throw new DigitPatternError(`"${pattern}": "!" must be the last character`);
        re += '[0-9]*';
        break;
      case '+':
        if (i !== 0) throw new DigitPatternError(`"${pattern}": "+" may only start a pattern`);
        re += '\\+';
        break;
      case '[': {
        const end = pattern.indexOf(']', i + 1);
        if (end < 0) throw new DigitPatternError(`"${pattern}": "[" without "]"`);
        const set = pattern.slice(i + 1, end);
        if (!/^([0-9](-[0-9])?)+$/.test(set)) throw new DigitPatternError(`"${pattern}": [${set}] must hold digits and ranges like 1-5`);
        for (const m of set.matchAll(/([0-9])-([0-9])/g)) {
          if ((m[1] as string) > (m[2] as string)) throw new DigitPatternError(`"${pattern}": range ${m[0]} runs backwards`);
        }
        re += `[${set}]`;
        i = end;
        break;
      }
      default:
        if (c < '0' || c > '9') throw new DigitPatternError(`"${pattern}": "${c}" is not a digit or one of X Z N [ ] . ! +`);
        re += c;
    }
  }
  if (re === '') throw new DigitPatternError('a pattern cannot be empty');
  const regex = new RegExp(`^${re}$`);
  return { source: pattern, matches: (dialed) => regex.test(dialed) };
}
