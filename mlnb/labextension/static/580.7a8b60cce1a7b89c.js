"use strict";(self.rspackChunkmlnb=self.rspackChunkmlnb||[]).push([[580],{475(e,o,r){var t=r(601),n=r.n(t),a=r(314),l=(r.n(a))()(n());l.push([e.id,`/* mlnb: badges on tagged cells, the sidebar, dialogs. */
.jp-Cell.mlnb-tagged {
  position: relative;
}

.mlnb-badges {
  position: absolute;
  top: 2px;
  left: 2px;
  z-index: 2;
  display: flex;
  gap: 2px;
  pointer-events: none;
}

.mlnb-badge {
  font-size: 9px;
  line-height: 12px;
  padding: 0 4px;
  border-radius: 6px;
  color: white;
  background: var(--jp-brand-color1);
}

.mlnb-badge.mlnb-tag-parameters {
  background: var(--jp-info-color1, #0288d1);
}

.mlnb-badge.mlnb-tag-export {
  background: var(--jp-success-color1, #388e3c);
}

.mlnb-badge.mlnb-tag-example {
  background: var(--jp-warn-color1, #f57c00);
}

.mlnb-badge.mlnb-tag-skip {
  background: var(--jp-layout-color4, #757575);
}

.jp-Cell.mlnb-tag-export .jp-InputArea-editor {
  border-left: 3px solid var(--jp-success-color1, #388e3c);
}

.jp-Cell.mlnb-tag-skip .jp-InputArea-editor {
  opacity: 0.7;
}

.mlnb-sidebar {
  padding: 8px;
  overflow-y: auto;
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-size: var(--jp-ui-font-size1);
}

.mlnb-header {
  font-weight: bold;
  font-size: var(--jp-ui-font-size2);
  text-transform: uppercase;
  margin-bottom: 4px;
}

.mlnb-notebook {
  color: var(--jp-ui-font-color2);
  word-break: break-all;
}

.mlnb-section {
  font-size: var(--jp-ui-font-size1);
  margin: 12px 0 4px;
  display: flex;
  justify-content: space-between;
  align-items: center;
}

.mlnb-tag-buttons {
  display: flex;
  flex-wrap: wrap;
  gap: 4px;
}

.mlnb-tag-button,
.mlnb-refresh,
.mlnb-compare,
.mlnb-ui-button {
  border: 1px solid var(--jp-border-color1);
  background: var(--jp-layout-color2);
  color: var(--jp-ui-font-color1);
  border-radius: 3px;
  padding: 2px 8px;
  cursor: pointer;
}

.mlnb-tag-button.mlnb-on {
  background: var(--jp-brand-color1);
  color: white;
}

.mlnb-compare:disabled,
.mlnb-ui-button:disabled,
.mlnb-tag-button:disabled {
  opacity: 0.5;
  cursor: default;
}

.mlnb-note {
  color: var(--jp-ui-font-color2);
  margin: 4px 0;
}

.mlnb-error {
  color: var(--jp-error-color1);
}

.mlnb-runs {
  list-style: none;
  padding: 0;
  margin: 0;
}

.mlnb-run {
  border-bottom: 1px solid var(--jp-border-color2);
  padding: 4px 0;
}

.mlnb-run-head {
  display: flex;
  gap: 6px;
  align-items: baseline;
}

.mlnb-run-status {
  font-size: 9px;
  padding: 0 4px;
  border-radius: 6px;
  background: var(--jp-layout-color3);
}

/* what the run is doing: a cell runs in it, open between cells, a pipeline step, ended */
.mlnb-state-busy .mlnb-run-status,
.mlnb-state-step .mlnb-run-status {
  background: var(--jp-info-color1, #0288d1);
  color: white;
}

.mlnb-state-idle .mlnb-run-status {
  background: transparent;
  border: 1px solid var(--jp-info-color1, #0288d1);
  color: var(--jp-ui-font-color1);
}

.mlnb-state-ended .mlnb-run-status {
  background: var(--jp-success-color1, #388e3c);
  color: white;
}

.mlnb-state-failed .mlnb-run-status {
  background: var(--jp-error-color1, #d32f2f);
  color: white;
}

.mlnb-section {
  flex-wrap: wrap;
  gap: 4px;
}

.mlnb-run-actions {
  display: flex;
  flex-wrap: wrap;
  gap: 4px;
}

.mlnb-run-select {
  margin: 0;
}

.mlnb-run-params,
.mlnb-run-links {
  display: flex;
  flex-wrap: wrap;
  gap: 4px 8px;
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size);
  color: var(--jp-ui-font-color1);
}

.mlnb-run-links {
  font-family: var(--jp-ui-font-family);
}

.mlnb-run-links a {
  color: var(--jp-content-link-color);
}

/* a param (or metric) whose value differs between the listed runs */
.mlnb-diff {
  background: color-mix(in srgb, var(--jp-warn-color1, #f57c00) 30%, transparent);
  color: var(--jp-ui-font-color0);
  border-radius: 3px;
  padding: 0 3px;
  font-weight: 600;
}

.mlnb-more {
  color: var(--jp-ui-font-color2);
  cursor: help;
}

.mlnb-compare-panel {
  padding: 12px;
  overflow: auto;
  background: var(--jp-layout-color0);
  color: var(--jp-ui-font-color1);
}

.mlnb-compare-head {
  display: flex;
  justify-content: space-between;
  align-items: center;
  margin-bottom: 8px;
}

.mlnb-compare-body table {
  border-collapse: collapse;
}

.mlnb-compare-body td,
.mlnb-compare-body th {
  padding: 2px 8px;
  border-bottom: 1px solid var(--jp-border-color2);
  text-align: left;
}

/*
 * JupyterLab hides the cell toolbar of the active cell when its first line of code reaches
 * the toolbar, or the toolbar covers more than half of the editor (.jp-toolbar-overlap):
 * with the sidebar open the notebook is narrower, the toolbar (with mlnb's tag buttons) is
 * wider, and a long first line loses the toolbar and its tag buttons. mlnb gives the toolbar
 * its own row above the editor in that case instead (only the active cell has one), and keeps the tag buttons compact.
 */
@media only screen and (width > 760px) {
  .jp-Cell.jp-toolbar-overlap .jp-InputArea {
    position: relative;
    padding-top: 28px;
  }

  .jp-Cell.jp-toolbar-overlap .jp-cell-toolbar {
    display: flex;
    top: 0;
  }
}

.jp-cell-toolbar [data-jp-item-name^='mlnb-tag-'] .jp-ToolbarButtonComponent-label {
  font-size: var(--jp-ui-font-size0);
  padding: 0 2px;
}

.mlnb-run-link {
  color: var(--jp-content-link-color);
  text-decoration: none;
}

.mlnb-run-time {
  margin-left: auto;
  color: var(--jp-ui-font-color2);
}

.mlnb-run-metrics {
  display: flex;
  flex-wrap: wrap;
  gap: 8px;
  color: var(--jp-ui-font-color2);
}

.mlnb-step-run {
  font-family: var(--jp-code-font-family);
  font-size: 10px;
  color: var(--jp-ui-font-color2);
  overflow-wrap: anywhere;
}

.mlnb-job-log {
  font-size: 10px;
  white-space: pre-wrap;
  max-height: 10em;
  overflow-y: auto;
}

.mlnb-dialog p {
  margin: 4px 0;
}

.mlnb-step-name {
  color: var(--jp-ui-font-color2);
}

.mlnb-error-dialog .mlnb-error-cause {
  font-weight: 600;
}

.mlnb-export-result .mlnb-run-link,
.mlnb-export-result .mlnb-service-link {
  display: block;
  margin: 4px 0;
  color: var(--jp-content-link-color);
}
`,""]),r.d(o,{},{A:l})},968(e,o,r){var t=r(601),n=r.n(t),a=r(314),l=(r.n(a))()(n());l.push([e.id,`/* mlnb: the pipeline panel (DAG, steps, history, schedules), themed by JupyterLab's variables. */
.mlnb-pipeline-panel {
  --mlnb-state-queued: var(--jp-layout-color3);
  --mlnb-state-running: var(--jp-brand-color1);
  --mlnb-state-retrying: var(--jp-warn-color1);
  --mlnb-state-cached: var(--jp-info-color2, var(--jp-info-color1));
  --mlnb-state-done: var(--jp-success-color1);
  --mlnb-state-failed: var(--jp-error-color1);
  --mlnb-state-skipped: var(--jp-layout-color4);
  --mlnb-state-idle: var(--jp-border-color1);

  padding: 12px 16px;
  overflow: auto;
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-family: var(--jp-ui-font-family);
  font-size: var(--jp-ui-font-size1);
}

.mlnb-pipeline-title {
  margin: 0 0 8px;
  font-size: var(--jp-ui-font-size3);
  color: var(--jp-ui-font-color0);
}

.mlnb-pipeline-bar,
.mlnb-schedule-form,
.mlnb-pipeline-viewing {
  display: flex;
  align-items: center;
  gap: 8px;
  flex-wrap: wrap;
}

.mlnb-pipeline-status[data-state='failed'],
.mlnb-schedule-error {
  color: var(--jp-error-color1);
}

.mlnb-pipeline-status[data-state='succeeded'] {
  color: var(--jp-success-color1);
}

.mlnb-pipeline-viewing:not(:empty) {
  margin-top: 8px;
  padding: 4px 8px;
  border-left: 3px solid var(--jp-brand-color1);
  background: var(--jp-layout-color2);
}

.mlnb-dag {
  margin: 12px 0;
  overflow-x: auto;
}

.mlnb-dag-canvas {
  position: relative;
}

.mlnb-dag-edges {
  position: absolute;
  left: 0;
  top: 0;
}

.mlnb-dag-edge {
  fill: none;
  stroke: var(--jp-ui-font-color2);
  stroke-width: 1.5;
}

.mlnb-dag-edges marker path {
  fill: var(--jp-ui-font-color2);
}

.mlnb-dag-step {
  position: absolute;
  box-sizing: border-box;
  padding: 6px 8px 4px 12px;
  border: 1px solid var(--jp-border-color1);
  border-left: 6px solid var(--mlnb-state);
  border-radius: 4px;
  background: var(--jp-layout-color0);
  color: var(--jp-ui-font-color1);
  overflow: hidden;
  cursor: pointer;
  --mlnb-state: var(--mlnb-state-idle);
}

.mlnb-dag-name {
  font-weight: 600;
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
  color: var(--jp-ui-font-color0);
}

.mlnb-dag-state {
  font-size: var(--jp-ui-font-size0);
  text-transform: uppercase;
  letter-spacing: 0.04em;
}

.mlnb-dag-cell {
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-ui-font-size0);
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
  color: var(--jp-ui-font-color2);
}

.mlnb-step-row {
  --mlnb-state: var(--mlnb-state-idle);
}

/* after the defaults above: a step's state colours its box and its row's dot */
[data-state='queued'] { --mlnb-state: var(--mlnb-state-queued); }
[data-state='running'] { --mlnb-state: var(--mlnb-state-running); }
[data-state='retrying'] { --mlnb-state: var(--mlnb-state-retrying); }
[data-state='cached'] { --mlnb-state: var(--mlnb-state-cached); }
[data-state='done'] { --mlnb-state: var(--mlnb-state-done); }
[data-state='failed'] { --mlnb-state: var(--mlnb-state-failed); }
[data-state='skipped'] { --mlnb-state: var(--mlnb-state-skipped); }

.mlnb-dag-step[data-state='running'] {
  box-shadow: 0 0 0 2px var(--mlnb-state-running);
}

.mlnb-dag-step[data-state='failed'] {
  background: var(--jp-layout-color2);
}

.mlnb-dag-step[data-state='skipped'] .mlnb-dag-name {
  text-decoration: line-through;
}

.mlnb-pipeline-steps {
  border-collapse: collapse;
  width: 100%;
}

.mlnb-pipeline-steps th,
.mlnb-pipeline-steps td {
  text-align: left;
  vertical-align: top;
  padding: 4px 8px;
  border-bottom: 1px solid var(--jp-border-color2);
}

.mlnb-state-dot {
  display: inline-block;
  width: 9px;
  height: 9px;
  margin-right: 6px;
  border-radius: 50%;
  background: var(--mlnb-state, var(--mlnb-state-idle));
}

.mlnb-step-detail {
  color: var(--jp-ui-font-color2);
  max-width: 40em;
  overflow-wrap: anywhere;
}

.mlnb-pipeline-panel a {
  color: var(--jp-content-link-color);
  text-decoration: underline;
}

.mlnb-run-id {
  font-family: var(--jp-code-font-family);
  user-select: all;
  margin-right: 6px;
}

.mlnb-copy,
.mlnb-schedule-remove,
.mlnb-pipeline-live {
  margin-right: 6px;
}

.mlnb-history {
  list-style: none;
  padding: 0;
  margin: 0;
}

.mlnb-history-run {
  display: flex;
  gap: 12px;
  padding: 4px 8px;
  cursor: pointer;
  border-left: 3px solid transparent;
}

.mlnb-history-run:hover,
.mlnb-history-run:focus {
  background: var(--jp-layout-color2);
}

.mlnb-history-run.mlnb-mod-selected {
  border-left-color: var(--jp-brand-color1);
  background: var(--jp-layout-color2);
}

.mlnb-history-run[data-status='failed'] .mlnb-history-status {
  color: var(--jp-error-color1);
}

.mlnb-history-run[data-status='succeeded'] .mlnb-history-status {
  color: var(--jp-success-color1);
}

.mlnb-cron-input {
  font-family: var(--jp-code-font-family);
  width: 14em;
}

.mlnb-schedules {
  list-style: none;
  padding: 0;
}

.mlnb-schedule {
  display: flex;
  gap: 12px;
  align-items: center;
  padding: 2px 0;
}

.mlnb-schedule-id {
  color: var(--jp-ui-font-color2);
}

.mlnb-executed-notebook iframe {
  background: white;
}
`,""]),r.d(o,{},{A:l})},314(e){e.exports=function(e){var o=[];return o.toString=function(){return this.map(function(o){var r="",t=void 0!==o[5];return o[4]&&(r+="@supports (".concat(o[4],") {")),o[2]&&(r+="@media ".concat(o[2]," {")),t&&(r+="@layer".concat(o[5].length>0?" ".concat(o[5]):""," {")),r+=e(o),t&&(r+="}"),o[2]&&(r+="}"),o[4]&&(r+="}"),r}).join("")},o.i=function(e,r,t,n,a){"string"==typeof e&&(e=[[null,e,void 0]]);var l={};if(t)for(var i=0;i<this.length;i++){var p=this[i][0];null!=p&&(l[p]=!0)}for(var s=0;s<e.length;s++){var c=[].concat(e[s]);t&&l[c[0]]||(void 0!==a&&(void 0===c[5]||(c[1]="@layer".concat(c[5].length>0?" ".concat(c[5]):""," {").concat(c[1],"}")),c[5]=a),r&&(c[2]&&(c[1]="@media ".concat(c[2]," {").concat(c[1],"}")),c[2]=r),n&&(c[4]?(c[1]="@supports (".concat(c[4],") {").concat(c[1],"}"),c[4]=n):c[4]="".concat(n)),o.push(c))}},o}},601(e){e.exports=function(e){return e[1]}},72(e){var o=[];function r(e){for(var r=-1,t=0;t<o.length;t++)if(o[t].identifier===e){r=t;break}return r}function t(e,t){for(var n={},a=[],l=0;l<e.length;l++){var i=e[l],p=t.base?i[0]+t.base:i[0],s=n[p]||0,c="".concat(p," ").concat(s);n[p]=s+1;var d=r(c),b={css:i[1],media:i[2],sourceMap:i[3],supports:i[4],layer:i[5]};if(-1!==d)o[d].references++,o[d].updater(b);else{var u=function(e,o){var r=o.domAPI(o);return r.update(e),function(o){o?(o.css!==e.css||o.media!==e.media||o.sourceMap!==e.sourceMap||o.supports!==e.supports||o.layer!==e.layer)&&r.update(e=o):r.remove()}}(b,t);t.byIndex=l,o.splice(l,0,{identifier:c,updater:u,references:1})}a.push(c)}return a}e.exports=function(e,n){var a=t(e=e||[],n=n||{});return function(e){e=e||[];for(var l=0;l<a.length;l++){var i=r(a[l]);o[i].references--}for(var p=t(e,n),s=0;s<a.length;s++){var c=r(a[s]);0===o[c].references&&(o[c].updater(),o.splice(c,1))}a=p}}},659(e){var o={};e.exports=function(e,r){var t=function(e){if(void 0===o[e]){var r=document.querySelector(e);if(window.HTMLIFrameElement&&r instanceof window.HTMLIFrameElement)try{r=r.contentDocument.head}catch(e){r=null}o[e]=r}return o[e]}(e);if(!t)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");t.appendChild(r)}},540(e){e.exports=function(e){var o=document.createElement("style");return e.setAttributes(o,e.attributes),e.insert(o,e.options),o}},56(e,o,r){e.exports=function(e){var o=r.nc;o&&e.setAttribute("nonce",o)}},206(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var o=e.insertStyleElement(e);return{update:function(r){var t,n,a;t="",r.supports&&(t+="@supports (".concat(r.supports,") {")),r.media&&(t+="@media ".concat(r.media," {")),(n=void 0!==r.layer)&&(t+="@layer".concat(r.layer.length>0?" ".concat(r.layer):""," {")),t+=r.css,n&&(t+="}"),r.media&&(t+="}"),r.supports&&(t+="}"),(a=r.sourceMap)&&"u">typeof btoa&&(t+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),e.styleTagTransform(t,o,e.options)},remove:function(){var e;null===(e=o).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,o){if(o.styleSheet)o.styleSheet.cssText=e;else{for(;o.firstChild;)o.removeChild(o.firstChild);o.appendChild(document.createTextNode(e))}}},159(e,o,r){var t=r(72),n=r.n(t),a=r(206),l=r.n(a),i=r(659),p=r.n(i),s=r(56),c=r.n(s),d=r(540),b=r.n(d),u=r(113),m=r.n(u),f=r(475),v={};v.styleTagTransform=m(),v.setAttributes=c(),v.insert=p().bind(null,"head"),v.domAPI=l(),v.insertStyleElement=b(),n()(f.A,v),f.A&&f.A.locals&&f.A.locals;var g=r(968),h={};h.styleTagTransform=m(),h.setAttributes=c(),h.insert=p().bind(null,"head"),h.domAPI=l(),h.insertStyleElement=b(),n()(g.A,h),g.A&&g.A.locals&&g.A.locals}}]);