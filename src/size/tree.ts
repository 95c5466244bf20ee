import type { SizeNode } from './types.ts';

/**
 * Walks of a size tree that the text report and the diff share. `pick`
 * gives a node its key, or undefined to look at its children instead; the
 * bytes of every picked node are summed by key, and the walk stops there,
 * so no byte counts twice.
 */
export function sumBy(root: SizeNode | undefined, pick: (n: SizeNode, path: readonly SizeNode[]) => string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (n: SizeNode, path: SizeNode[]) => {
    const key = pick(n, path);
    if (key !== undefined) {
      out.set(key, (out.get(key) ?? 0) + n.bytes);
      return;
    }
    for (const c of n.children ?? []) walk(c, [...path, n]);
  };
  if (root) for (const c of root.children ?? []) walk(c, [root]);
  return out;
}

/** The nodes of one kind below the root (not below each other), largest first. */
export function nodesOf(root: SizeNode | undefined, kind: SizeNode['kind']): SizeNode[] {
  const out: SizeNode[] = [];
  const walk = (n: SizeNode) => (n.kind === kind ? out.push(n) : n.children?.forEach(walk));
  if (root) walk(root);
  return out.sort((a, b) => b.bytes - a.bytes);
}

/** A symbol's name with the object file it is in, from the path to it: `start_kernel [init/main.o]`. */
export function withObject(name: string, path: readonly SizeNode[]): string {
  const obj = [...path].reverse().find((p) => p.kind === 'object');
  return obj ? `${name} [${obj.name}]` : name;
}
