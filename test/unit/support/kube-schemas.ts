import { Ajv } from 'ajv';
import { validate as configMap } from 'kubernetes-models/_schemas/IoK8sApiCoreV1ConfigMap';
import { validate as deployment } from 'kubernetes-models/_schemas/IoK8sApiAppsV1Deployment';
import { validate as namespace } from 'kubernetes-models/_schemas/IoK8sApiCoreV1Namespace';
import { validate as persistentVolumeClaim } from 'kubernetes-models/_schemas/IoK8sApiCoreV1PersistentVolumeClaim';
import { validate as networkPolicy } from 'kubernetes-models/_schemas/IoK8sApiNetworkingV1NetworkPolicy';
import { validate as role } from 'kubernetes-models/_schemas/IoK8sApiRbacV1Role';
import { validate as roleBinding } from 'kubernetes-models/_schemas/IoK8sApiRbacV1RoleBinding';
import { validate as runtimeClass } from 'kubernetes-models/_schemas/IoK8sApiNodeV1RuntimeClass';
import { validate as service } from 'kubernetes-models/_schemas/IoK8sApiCoreV1Service';
import { validate as serviceAccount } from 'kubernetes-models/_schemas/IoK8sApiCoreV1ServiceAccount';

/**
 * Offline validation of rendered objects against the Kubernetes OpenAPI schemas of one
 * pinned version: kubernetes-models 5.1.0 (devDependency, exact version), generated from
 * Kubernetes v1.36.0's OpenAPI definitions and compiled by ajv into the validate functions
 * imported here. SPO's SeccompProfile is not a Kubernetes type: it is checked against the
 * schema below, written from SPO v1.0.0's api/seccompprofile/v1beta1 types (its kubebuilder
 * enums and bounds), strict about unknown fields.
 */
export const PINNED_KUBERNETES = '1.36.0';

/** An ajv validate function: true, or false with `errors`. */
type Validate = ((data: unknown) => boolean) & { errors?: readonly { instancePath: string; keyword: string; params: unknown; message?: string }[] | null };

const ACTIONS = ['SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY'];
const ARCHES = ['SCMP_ARCH_NATIVE', 'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64', 'SCMP_ARCH_X32', 'SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS64N32', 'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL64N32', 'SCMP_ARCH_PPC', 'SCMP_ARCH_PPC64', 'SCMP_ARCH_PPC64LE', 'SCMP_ARCH_S390', 'SCMP_ARCH_S390X', 'SCMP_ARCH_PARISC', 'SCMP_ARCH_PARISC64', 'SCMP_ARCH_RISCV64'];
const OPS = ['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ'];

const seccompProfileSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'security-profiles-operator.x-k8s.io/v1beta1' },
    kind: { const: 'SeccompProfile' },
    metadata: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: {
        name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 253 },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
        annotations: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
    spec: {
      type: 'object',
      additionalProperties: false,
      required: ['defaultAction'],
      properties: {
        defaultAction: { enum: ACTIONS.filter((a) => a !== 'SCMP_ACT_NOTIFY') },
        architectures: { type: 'array', items: { enum: ARCHES }, uniqueItems: true },
        syscalls: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['names', 'action'],
            properties: {
              names: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, uniqueItems: true },
              action: { enum: ACTIONS },
              errnoRet: { type: 'integer', minimum: 0, maximum: 4095 },
              args: {
                type: 'array',
                maxItems: 6,
                items: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['index', 'op'],
                  properties: { index: { type: 'integer', minimum: 0, maximum: 5 }, value: { type: 'integer', minimum: 0 }, valueTwo: { type: 'integer', minimum: 0 }, op: { enum: OPS } },
                },
              },
            },
          },
        },
      },
    },
  },
};

const VALIDATORS: Readonly<Record<string, Validate>> = {
  'v1/Namespace': namespace,
  'v1/ConfigMap': configMap,
  'v1/Service': service,
  'v1/ServiceAccount': serviceAccount,
  'v1/PersistentVolumeClaim': persistentVolumeClaim,
  'apps/v1/Deployment': deployment,
  'networking.k8s.io/v1/NetworkPolicy': networkPolicy,
  'rbac.authorization.k8s.io/v1/Role': role,
  'rbac.authorization.k8s.io/v1/RoleBinding': roleBinding,
  'node.k8s.io/v1/RuntimeClass': runtimeClass,
  'security-profiles-operator.x-k8s.io/v1beta1/SeccompProfile': new Ajv({ allErrors: true, strict: true }).compile(seccompProfileSchema),
};

/** The schema errors of one object, as `apiVersion/kind name: /path message` lines; empty when it is valid. */
export function schemaErrors(object: { apiVersion: string; kind: string; metadata?: { name?: string } }): string[] {
  const key = `${object.apiVersion}/${object.kind}`;
  const validate = VALIDATORS[key];
  if (!validate) return [`${key}: no pinned schema for this kind`];
  if (validate(object)) return [];
  // The compiled validators carry no messages: the keyword and its parameters say what failed.
  return (validate.errors ?? []).map((e) => `${key} ${object.metadata?.name ?? '?'}: ${e.instancePath || '/'} ${e.message ?? `${e.keyword} ${JSON.stringify(e.params)}`}`);
}
