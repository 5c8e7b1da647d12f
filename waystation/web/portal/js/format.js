// How values read on the page: dates in the patient's own locale, times relative to now.

/** Today's date in the device's time zone as YYYY-MM-DD (what a symptom log's `date` holds). */
export function today() {
  const now = new Date();
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

/**
 * A calendar date (YYYY-MM-DD) for reading: "Sat 29 Nov 2025". Parsed as a local date, so
 * it never shifts by a day across time zones.
 * @param {unknown} value
 */
export function readableDate(value) {
  if (typeof value !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(value)) return String(value ?? "");
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d).toLocaleDateString(undefined,
    { weekday: "short", day: "numeric", month: "short", year: "numeric" });
}

/**
 * A moment (RFC 3339) for reading: "Mon 1 Dec 2025, 11:00".
 * @param {unknown} value
 */
export function readableTime(value) {
  if (typeof value !== "string") return "";
  const when = new Date(value);
  if (Number.isNaN(when.getTime())) return value;
  return when.toLocaleString(undefined, { weekday: "short", day: "numeric", month: "short",
    year: "numeric", hour: "2-digit", minute: "2-digit" });
}

/**
 * "just now", "5 minutes ago", "3 hours ago", or a date.
 * @param {string | null | undefined} value
 */
export function ago(value) {
  if (!value) return "never";
  const ms = Date.now() - new Date(value).getTime();
  if (Number.isNaN(ms)) return "unknown";
  if (ms < 60_000) return "just now";
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min ago`;
  if (ms < 86_400_000) return `${Math.round(ms / 3_600_000)} h ago`;
  return readableTime(value);
}

/** @param {number} n @param {string} one @param {string} many */
export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** @param {unknown} severity 0-10 */
export function severityWord(severity) {
  if (typeof severity !== "number") return "";
  if (severity <= 2) return "mild";
  if (severity <= 5) return "moderate";
  if (severity <= 8) return "severe";
  return "very severe";
}
