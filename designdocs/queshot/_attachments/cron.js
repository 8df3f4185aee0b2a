// A schedule's slots for people to read: the next run and the last slot,
// computed in the schedule's own time zone. `every` slots count from the Unix
// epoch (schedules.py); cron expressions are the five usual fields with
// lists, ranges, steps and month/day names, read as cron does (day of month
// and day of week both restricted: either matches). What this does not read
// (L, W, #, ?) shows as unknown: `queshot schedules` (cronsim) is the judge,
// and around a daylight-saving change this reading may differ from it.
'use strict';

const CRON_FIELDS = [
  { min: 0, max: 59 },
  { min: 0, max: 23 },
  { min: 1, max: 31 },
  { min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];
const CRON_ALIASES = {
  '@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *', '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0', '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@hourly': '0 * * * *',
};
const MINUTE_MS = 60000;
const CRON_STEPS = 1000; // jumps tried before giving up (a 31st of February): a year is ~450

// One field as the set of values it allows, or null if unreadable.
function cronField(text, field) {
  const allowed = new Set();
  const value = (word) => {
    const index = field.names ? field.names.indexOf(word.toLowerCase()) : -1;
    const n = index >= 0 ? index + field.min : /^\d+$/.test(word) ? Number(word) : NaN;
    return n >= field.min && n <= field.max ? n : NaN;
  };
  for (const part of text.split(',')) {
    const match = /^(\*|[a-z0-9]+)(?:-([a-z0-9]+))?(?:\/(\d+))?$/i.exec(part);
    if (!match) return null;
    const low = match[1] === '*' ? field.min : value(match[1]);
    const high = match[2] ? value(match[2]) : match[1] === '*' || match[3] ? field.max : low;
    const step = match[3] ? Number(match[3]) : 1;
    if (Number.isNaN(low) || Number.isNaN(high) || step < 1 || high < low) return null;
    for (let n = low; n <= high; n += step) allowed.add(field.names && field.max === 7 && n === 7 ? 0 : n);
  }
  return { allowed, any: text === '*' };
}

function parseCron(expression) {
  const text = CRON_ALIASES[expression.trim().toLowerCase()] || expression.trim();
  const parts = text.split(/\s+/);
  if (parts.length !== 5) return null;
  const fields = parts.map((part, i) => cronField(part, CRON_FIELDS[i]));
  return fields.includes(null) ? null : fields;
}

const zoneFormats = new Map();

// The wall clock of `ms` in `zone`: {month, day, weekday, hour, minute}.
function wallClock(ms, zone) {
  if (!zoneFormats.has(zone)) {
    zoneFormats.set(zone, new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', month: 'numeric', day: 'numeric', weekday: 'short', hour: 'numeric', minute: 'numeric',
    }));
  }
  const parts = Object.fromEntries(zoneFormats.get(zone).formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return {
    month: Number(parts.month), day: Number(parts.day), hour: Number(parts.hour), minute: Number(parts.minute),
    weekday: CRON_FIELDS[4].names.indexOf(parts.weekday.toLowerCase()),
  };
}

function dayMatches(fields, t) {
  const [, , dom, month, dow] = fields;
  if (!month.allowed.has(t.month)) return false;
  if (dom.any || dow.any) return dom.allowed.has(t.day) && dow.allowed.has(t.weekday);
  return dom.allowed.has(t.day) || dow.allowed.has(t.weekday);
}

// The first slot after `fromMs` (step 1) or the last at or before it (step -1),
// walking whole days, hours, then minutes of the zone's wall clock; null if none found.
function cronSlot(fields, fromMs, zone, step) {
  let t = fromMs - (fromMs % MINUTE_MS) + (step > 0 ? MINUTE_MS : 0);
  for (let i = 0; i < CRON_STEPS; i++) {
    const wall = wallClock(t, zone);
    if (!dayMatches(fields, wall)) {
      t += step > 0 ? ((23 - wall.hour) * 60 + (60 - wall.minute)) * MINUTE_MS : -(wall.hour * 60 + wall.minute + 1) * MINUTE_MS;
    } else if (!fields[1].allowed.has(wall.hour)) {
      t += step > 0 ? (60 - wall.minute) * MINUTE_MS : -(wall.minute + 1) * MINUTE_MS;
    } else if (!fields[0].allowed.has(wall.minute)) {
      t += step * MINUTE_MS;
    } else {
      return t;
    }
  }
  return null;
}

// {next, last} slot times (epoch ms, null if unknown) of a schedule document.
function scheduleSlots(s, now) {
  if (typeof s.every === 'number' && Number.isInteger(s.every) && s.every >= 1) {
    const period = s.every * 1000;
    return { next: (Math.floor(now / period) + 1) * period, last: Math.floor(now / period) * period };
  }
  const fields = typeof s.cron === 'string' ? parseCron(s.cron) : null;
  const zone = scheduleZone(s);
  if (!fields || !zone) return { next: null, last: null };
  const minute = now - (now % MINUTE_MS);
  const key = JSON.stringify([s.cron, zone, minute]);
  if (!slotsSeen.has(key)) {
    if (slotsSeen.size > 1000) slotsSeen.clear();
    slotsSeen.set(key, { next: cronSlot(fields, now, zone, 1), last: cronSlot(fields, now, zone, -1) });
  }
  return slotsSeen.get(key);
}

const slotsSeen = new Map(); // [cron, zone, minute] -> slots: a refresh does not walk again

// The schedule's zone if the browser knows it, else null.
function scheduleZone(s) {
  const zone = typeof s.timezone === 'string' && s.timezone ? s.timezone : QUESHOT.SCHEDULE_TIMEZONE;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return zone;
  } catch (error) {
    return null;
  }
}
