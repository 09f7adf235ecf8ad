import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * Unknown fields. The OpenAPI definitions let any object carry fields they do not name (the
 * API server drops them with a warning, or refuses them under `--validate=strict`), so a
 * misspelt security field would pass schemaErrors and be silently ignored by the cluster.
 * This check writes each object as a TypeScript literal typed with kubernetes-models' type
 * for its kind (the same pinned Kubernetes version) and compiles it: TypeScript refuses a
 * property an object literal's type does not declare, at every depth.
 */

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** kind -> [module under kubernetes-models, exported interface]. */
const TYPES: Readonly<Record<string, readonly [string, string]>> = {
  'v1/Namespace': ['v1/Namespace', 'INamespace'],
  'v1/ConfigMap': ['v1/ConfigMap', 'IConfigMap'],
  'v1/Service': ['v1/Service', 'IService'],
  'v1/ServiceAccount': ['v1/ServiceAccount', 'IServiceAccount'],
  'v1/PersistentVolumeClaim': ['v1/PersistentVolumeClaim', 'IPersistentVolumeClaim'],
  'apps/v1/Deployment': ['apps/v1/Deployment', 'IDeployment'],
  'networking.k8s.io/v1/NetworkPolicy': ['networking.k8s.io/v1/NetworkPolicy', 'INetworkPolicy'],
  'rbac.authorization.k8s.io/v1/Role': ['rbac.authorization.k8s.io/v1/Role', 'IRole'],
  'rbac.authorization.k8s.io/v1/RoleBinding': ['rbac.authorization.k8s.io/v1/RoleBinding', 'IRoleBinding'],
  'node.k8s.io/v1/RuntimeClass': ['node.k8s.io/v1/RuntimeClass', 'IRuntimeClass'],
};

/** Fields the pinned types do not declare, as TypeScript reports them: `Deployment lm-x: <message>`; empty when none. */
export function unknownFields(objects: readonly { apiVersion: string; kind: string; metadata?: { name?: string } }[]): string[] {
  const typed = objects.filter((o) => TYPES[`${o.apiVersion}/${o.kind}`]);
  // In the repository, so module resolution finds its node_modules; removed at once.
  const dir = mkdtempSync(path.join(REPO, 'node_modules', '.kube-fields-'));
  try {
    const file = path.join(dir, 'objects.mts');
    const imports = [...new Set(typed.map((o) => TYPES[`${o.apiVersion}/${o.kind}`]!))].map(([mod, name]) => `import type { ${name} } from 'kubernetes-models/${mod}';`);
    const consts = typed.map((o, i) => `export const o${i}: ${TYPES[`${o.apiVersion}/${o.kind}`]![1]} = ${JSON.stringify(o, null, 1)};`);
    writeFileSync(file, [...imports, ...consts].join('\n'));
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: [],
    });
    return ts.getPreEmitDiagnostics(program).map((d) => {
      const at = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
      const text = d.file?.text ?? '';
      // The object a diagnostic falls in: the last `export const oN` before its line.
      const before = text.split('\n').slice(0, at + 1).join('\n');
      const m = [...before.matchAll(/export const o(\d+):/g)].pop();
      const o = m ? typed[Number(m[1])] : undefined;
      return `${o ? `${o.kind} ${o.metadata?.name ?? '?'}` : '(imports)'}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
