import { z } from 'zod';
import type { BootCost } from './bootcost.ts';
import type { BuildTimes } from './buildtime.ts';
import type { FlashUse } from './flash.ts';
import type { MachineInfo } from './machine.ts';
import type { KernelSizes, MemoryFields, RamAccount } from './memory.ts';

/**
 * The results file (bench/results-<config>.json) as one schema: `xip
 * measure --save` and `xip bench` validate what they are about to write,
 * `xip report` validates what it reads before a line of the README is
 * generated from it, and the TypeScript type of the results is inferred from
 * it, so the file, the writer and the reader cannot drift apart.
 *
 * Objects are strict: a field the schema does not know is a mistake (a typo,
 * a file of another version), not something to ignore.
 */
export const RESULTS_SCHEMA = 1;

const int = () => z.number().int();
const count = () => z.number().int().nonnegative();
const real = () => z.number().finite();

export const MemoryFieldsSchema = z
  .object({
    availableKiB: int(),
    totalKiB: int(),
    kernelCodeKiB: int(),
    rwdataKiB: int(),
    rodataKiB: int(),
    initKiB: int(),
    bssKiB: int(),
    reservedKiB: int(),
    cmaReservedKiB: int(),
  })
  .strict();

export const KernelSizesSchema = z
  .object({ text: count(), rodata: count(), initText: count(), ramImage: count(), ramStartPhys: count() })
  .strict();

export const MachineInfoSchema = z
  .object({
    date: z.string().datetime(),
    cpu: z.string(),
    cores: z.number().int().positive(),
    memMiB: count(),
    node: z.string(),
    qemu: z.string(),
    clang: z.string(),
    gcc: z.string(),
    binutils: z.string(),
    kernelVersion: z.string(),
    gitCommit: z.string(),
  })
  .strict();

export const RamAccountSchema = z
  .object({
    totalKiB: real(),
    availableKiB: real(),
    reservedKiB: real(),
    belowKernelKiB: real(),
    kernelImageKiB: real(),
    hashTablesKiB: real(),
    otherReservedKiB: real(),
  })
  .strict();

export const BootCostSchema = z
  .object({ toStartKernel: count(), toRunInit: count().optional(), toPid1: count().optional() })
  .strict();

export const FlashUseSchema = z
  .object({
    imageBytes: count(),
    budgetBytes: z.number().int().positive(),
    freeBytes: int(),
    parts: z.array(z.object({ name: z.string(), bytes: count() }).strict()),
  })
  .strict();

export const BuildTimesSchema = z
  .object({
    config: z.string(),
    cleanSeconds: real().nonnegative(),
    noopSeconds: real().nonnegative(),
    jobs: z.number().int().positive(),
    command: z.string(),
  })
  .strict();

export const RamAtSizeSchema = z
  .object({
    memMiB: z.number().int().positive(),
    xip: MemoryFieldsSchema,
    stock: MemoryFieldsSchema,
    /** xip minus stock, per field. */
    diff: MemoryFieldsSchema,
  })
  .strict();

export const MinRamOfSchema = z
  .object({
    minKiB: count(),
    /** Why one step (64 KiB) less fails. */
    below: z.object({ kib: count(), kind: z.string(), line: z.string() }).strict().optional(),
    attempts: z.array(z.object({ kib: count(), ok: z.boolean(), kind: z.string().optional() }).strict()),
    memory: MemoryFieldsSchema.optional(),
    account: RamAccountSchema.optional(),
  })
  .strict();

const bootCostRuns = () => z.array(BootCostSchema).min(1);

export const ResultsSchema = z
  .object({
    schema: z.literal(RESULTS_SCHEMA),
    board: z.string().min(1),
    config: z.string().min(1),
    toolchain: z.string().min(1),
    userspace: z.string().min(1),
    machine: MachineInfoSchema,
    commands: z.array(z.string()),
    kernelSizes: z.object({ xip: KernelSizesSchema, stock: KernelSizesSchema }).strict(),
    ram: z
      .object({
        sizes: z.array(RamAtSizeSchema).min(1),
        /** text + rodata + init text of the XIP kernel (KiB): the least the available RAM must grow by. */
        requiredGainKiB: count(),
        /** Reserved RAM per page of RAM, from the smallest and largest size (bytes): struct page and what scales with RAM. */
        reservedPerPageBytes: z.object({ xip: real().optional(), stock: real().optional() }).strict(),
      })
      .strict()
      .optional(),
    minRam: z
      .object({ xip: MinRamOfSchema, stock: MinRamOfSchema, savedKiB: int(), stepKiB: z.number().int().positive() })
      .strict()
      .optional(),
    bootCost: z
      .object({ method: z.string(), memMiB: z.number().int().positive(), xip: bootCostRuns(), vmlinux: bootCostRuns(), vmlinuz: bootCostRuns() })
      .strict()
      .optional(),
    flash: FlashUseSchema.optional(),
    build: BuildTimesSchema.optional(),
    // Files written before notes were always present (results-lwrt_qemu_malta.json) have none.
    notes: z.array(z.string()).default([]),
  })
  .strict();

export type Results = z.infer<typeof ResultsSchema>;
export type RamAtSize = z.infer<typeof RamAtSizeSchema>;
export type MinRamOf = z.infer<typeof MinRamOfSchema>;

/**
 * The parts are measured by modules that declare their own interfaces; the
 * schema must describe exactly those, in both directions. A field added to
 * one and not the other fails `tsc` here.
 */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
export const SCHEMA_MATCHES_MEASURED_TYPES: [
  Same<z.infer<typeof MemoryFieldsSchema>, MemoryFields>,
  Same<z.infer<typeof KernelSizesSchema>, KernelSizes>,
  Same<z.infer<typeof MachineInfoSchema>, MachineInfo>,
  Same<z.infer<typeof RamAccountSchema>, RamAccount>,
  Same<z.infer<typeof BootCostSchema>, BootCost>,
  Same<z.infer<typeof FlashUseSchema>, FlashUse>,
  Same<z.infer<typeof BuildTimesSchema>, BuildTimes>,
] = [true, true, true, true, true, true, true];

/** "ram.sizes[0].xip.availableKiB" */
function fieldPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(top level)' : out;
}

/**
 * Results from parsed JSON, or the first problem as one line: "a field:
 * what is wrong" (the version first: a file of another version is not
 * picked apart field by field).
 */
export function checkResults(data: unknown): { ok: true; results: Results } | { ok: false; problem: string; otherVersion: boolean } {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { ok: false, problem: 'not a JSON object', otherVersion: false };
  }
  const version = (data as { schema?: unknown }).schema;
  if (version !== RESULTS_SCHEMA) {
    return { ok: false, problem: `schema ${JSON.stringify(version) ?? 'missing'}, this version reads ${RESULTS_SCHEMA}`, otherVersion: true };
  }
  const r = ResultsSchema.safeParse(data);
  if (r.success) return { ok: true, results: r.data };
  const issue = r.error.issues[0]!;
  return { ok: false, problem: `${fieldPath(issue.path)}: ${issue.message}`, otherVersion: false };
}
