// The page imports uPlot as `./uPlot.esm.js`, which the service serves from the uplot package
// (src/console/routes.ts); this gives that import the package's own types.
import uPlot from 'uplot';
export default uPlot;
