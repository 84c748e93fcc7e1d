// MathJax's own TeX parser over a list of LaTeX strings, in node (tests/test_docs.py runs it).
// Usage: node mathjax_check.js MATHJAX_DIR < strings.json  ->  JSON list of [index, error message]
// MATHJAX_DIR is the MathJax 3 that sphinx-mathjax-offline ships (the one the site uses); the TeX
// packages are the site's: base, ams and textmacros (which reads \_ inside \text{}).
const dir = process.argv[2];
const fs = require('fs');
const inputs = JSON.parse(fs.readFileSync(0, 'utf8'));
global.MathJax = {
  loader: {paths: {mathjax: dir}, require: require, load: ['adaptors/liteDOM', 'input/tex-base', '[tex]/ams', '[tex]/textmacros', '[tex]/noundefined']},
  tex: {packages: ['base', 'ams', 'textmacros'], formatError: (jax, err) => { throw err; }},
  startup: {typeset: false},
};
require(dir + '/startup.js');
MathJax.startup.promise.then(() => {
  const errors = [];
  inputs.forEach((tex, i) => {
    try { MathJax.tex2mml(tex, {display: true}); }
    catch (e) { errors.push([i, String(e.message || e)]); }
  });
  console.log(JSON.stringify(errors));
}).catch(e => { console.error('startup failed: ' + e); process.exit(2); });
