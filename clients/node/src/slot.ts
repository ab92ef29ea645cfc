import { PatternsError } from "./errors";

const SLOTS = 16384;

// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
const CRC16_TABLE = Array.from({ length: 256 }, (_, byte) => {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  return crc;
});

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC16_TABLE[((crc >> 8) ^ byte) & 0xff] as number);
  return crc;
}

/** The part of a key Cluster hashes: its hashtag (`{...}`, the first, when not empty), else all of it. */
function hashed(key: string): string {
  const open = key.indexOf("{");
  if (open < 0) return key;
  const close = key.indexOf("}", open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/** The Cluster slot of a key (what `CLUSTER KEYSLOT` answers). */
export function keySlot(key: string): number {
  return crc16(Buffer.from(hashed(key), "utf8")) % SLOTS;
}

/**
 * The one slot of a call's keys. Keys in several slots are refused before anything is sent,
 * with the code the server gives them (`CROSSSLOT`), naming each key's slot.
 */
export function slotOf(keys: readonly string[]): number {
  const slots = keys.map(keySlot);
  const [first] = slots;
  if (first === undefined) throw new TypeError("a call routed on a Cluster needs a key");
  if (slots.every((slot) => slot === first)) return first;
  const where = keys.map((key, i) => `${key} (slot ${slots[i]})`).join(", ");
  throw new PatternsError(
    `CROSSSLOT Keys in request don't hash to the same slot: ${where}. ` +
      "Give the keys of one call a shared hashtag, e.g. api:{user42}:minute and api:{user42}:day",
  );
}
