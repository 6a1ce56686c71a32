/**
 * Log levels changed at runtime (the admin's /logging), by logger name: `main` (the main thread:
 * acceptor, supervisor, health checks, reloads, admin) and `workers` (every worker thread, those
 * started later included). Each logger is registered with how to read and set its level, so a
 * component that gets its own logger (an access log, say) joins by registering it.
 */
import { LOG_LEVELS, type LogLevel } from '../config/schema.ts';

interface Control {
  get(): LogLevel;
  set(level: LogLevel): void;
}

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export class LogLevels {
  private readonly loggers = new Map<string, Control>();

  register(name: string, control: Control): this {
    this.loggers.set(name, control);
    return this;
  }

  /** Every logger's level now. */
  levels(): Record<string, LogLevel> {
    return Object.fromEntries([...this.loggers].map(([name, c]) => [name, c.get()]));
  }

  /**
   * Applies `changes` ({ level: "debug" } for every logger, { workers: "warn" } for one) if all
   * are valid; otherwise changes nothing and returns what is wrong.
   */
  apply(changes: Record<string, string>): string[] {
    const problems: string[] = [];
    const plan: [Control, LogLevel][] = [];
    for (const [name, level] of Object.entries(changes)) {
      if (!isLogLevel(level)) {
        problems.push(`${name}: unknown level "${level.slice(0, 40)}" (levels: ${LOG_LEVELS.join(', ')})`);
        continue;
      }
      if (name === 'level') {
        for (const c of this.loggers.values()) plan.push([c, level]);
        continue;
      }
      const c = this.loggers.get(name);
      if (!c) problems.push(`unknown logger "${name.slice(0, 40)}" (loggers: ${[...this.loggers.keys()].join(', ')}; or level= for all)`);
      else plan.push([c, level]);
    }
    if (problems.length === 0) for (const [c, level] of plan) c.set(level);
    return problems;
  }
}
