// The package's entry for asc, which resolves `import ... from "vivarium"`
// to node_modules/vivarium/index.ts.
export * from "./assembly/index";
