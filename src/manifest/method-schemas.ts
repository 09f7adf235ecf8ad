import { Ajv } from 'ajv';

let ajv: Ajv | undefined;

/**
 * The one compiler of coordination.methodSchemas, shared by the manifest check (does each
 * compile?) and the hub (checks every call): all errors off (the first one is reported),
 * each error with its data, unknown keywords allowed (authors' annotations).
 */
export function methodSchemaCompiler(): Ajv {
  ajv ??= new Ajv({ allErrors: false, verbose: true, strict: false });
  return ajv;
}

/** Why a schema does not compile, or undefined when it does. */
export function schemaProblem(schema: unknown): string | undefined {
  try {
    methodSchemaCompiler().compile(schema as object);
    return undefined;
  } catch (err) {
    return (err as Error).message.slice(0, 300);
  }
}
