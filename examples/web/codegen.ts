import type { CodegenConfig } from "@graphql-codegen/cli";

// Types of every operation in the app, from the gateway's schema (docs/schema.graphql in the
// repository). `npm run codegen` writes gql/; `npm run codegen:check` fails when it is stale.
const config: CodegenConfig = {
  schema: "../../docs/schema.graphql",
  documents: ["app/**/*.tsx", "lib/**/*.ts", "components/**/*.tsx"],
  ignoreNoDocuments: true,
  generates: {
    "./gql/": {
      preset: "client",
      config: {
        documentMode: "string",
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: { DateTime: "string", JSON: "unknown" },
      },
      presetConfig: { fragmentMasking: false },
    },
  },
};

export default config;
