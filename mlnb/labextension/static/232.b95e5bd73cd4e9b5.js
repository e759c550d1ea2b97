"use strict";(self.rspackChunkmlnb=self.rspackChunkmlnb||[]).push([[232],{475(r,e,n){var o=n(601),t=n.n(o),a=n(314),l=(n.n(a))()(t());l.push([r.id,`/* mlnb: badges on tagged cells, the sidebar, dialogs. */
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
.mlnb-refresh {
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

.mlnb-status-running .mlnb-run-status {
  background: var(--jp-info-color1, #0288d1);
  color: white;
}

.mlnb-status-finished .mlnb-run-status {
  background: var(--jp-success-color1, #388e3c);
  color: white;
}

.mlnb-status-failed .mlnb-run-status,
.mlnb-status-killed .mlnb-run-status {
  background: var(--jp-error-color1, #d32f2f);
  color: white;
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

.mlnb-job-log {
  font-size: 10px;
  white-space: pre-wrap;
  max-height: 10em;
  overflow-y: auto;
}

.mlnb-dialog p {
  margin: 4px 0;
}
`,""]),n.d(e,{},{A:l})},314(r){r.exports=function(r){var e=[];return e.toString=function(){return this.map(function(e){var n="",o=void 0!==e[5];return e[4]&&(n+="@supports (".concat(e[4],") {")),e[2]&&(n+="@media ".concat(e[2]," {")),o&&(n+="@layer".concat(e[5].length>0?" ".concat(e[5]):""," {")),n+=r(e),o&&(n+="}"),e[2]&&(n+="}"),e[4]&&(n+="}"),n}).join("")},e.i=function(r,n,o,t,a){"string"==typeof r&&(r=[[null,r,void 0]]);var l={};if(o)for(var i=0;i<this.length;i++){var s=this[i][0];null!=s&&(l[s]=!0)}for(var c=0;c<r.length;c++){var p=[].concat(r[c]);o&&l[p[0]]||(void 0!==a&&(void 0===p[5]||(p[1]="@layer".concat(p[5].length>0?" ".concat(p[5]):""," {").concat(p[1],"}")),p[5]=a),n&&(p[2]&&(p[1]="@media ".concat(p[2]," {").concat(p[1],"}")),p[2]=n),t&&(p[4]?(p[1]="@supports (".concat(p[4],") {").concat(p[1],"}"),p[4]=t):p[4]="".concat(t)),e.push(p))}},e}},601(r){r.exports=function(r){return r[1]}},72(r){var e=[];function n(r){for(var n=-1,o=0;o<e.length;o++)if(e[o].identifier===r){n=o;break}return n}function o(r,o){for(var t={},a=[],l=0;l<r.length;l++){var i=r[l],s=o.base?i[0]+o.base:i[0],c=t[s]||0,p="".concat(s," ").concat(c);t[s]=c+1;var u=n(p),d={css:i[1],media:i[2],sourceMap:i[3],supports:i[4],layer:i[5]};if(-1!==u)e[u].references++,e[u].updater(d);else{var b=function(r,e){var n=e.domAPI(e);return n.update(r),function(e){e?(e.css!==r.css||e.media!==r.media||e.sourceMap!==r.sourceMap||e.supports!==r.supports||e.layer!==r.layer)&&n.update(r=e):n.remove()}}(d,o);o.byIndex=l,e.splice(l,0,{identifier:p,updater:b,references:1})}a.push(p)}return a}r.exports=function(r,t){var a=o(r=r||[],t=t||{});return function(r){r=r||[];for(var l=0;l<a.length;l++){var i=n(a[l]);e[i].references--}for(var s=o(r,t),c=0;c<a.length;c++){var p=n(a[c]);0===e[p].references&&(e[p].updater(),e.splice(p,1))}a=s}}},659(r){var e={};r.exports=function(r,n){var o=function(r){if(void 0===e[r]){var n=document.querySelector(r);if(window.HTMLIFrameElement&&n instanceof window.HTMLIFrameElement)try{n=n.contentDocument.head}catch(r){n=null}e[r]=n}return e[r]}(r);if(!o)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");o.appendChild(n)}},540(r){r.exports=function(r){var e=document.createElement("style");return r.setAttributes(e,r.attributes),r.insert(e,r.options),e}},56(r,e,n){r.exports=function(r){var e=n.nc;e&&r.setAttribute("nonce",e)}},206(r){r.exports=function(r){if("u"<typeof document)return{update:function(){},remove:function(){}};var e=r.insertStyleElement(r);return{update:function(n){var o,t,a;o="",n.supports&&(o+="@supports (".concat(n.supports,") {")),n.media&&(o+="@media ".concat(n.media," {")),(t=void 0!==n.layer)&&(o+="@layer".concat(n.layer.length>0?" ".concat(n.layer):""," {")),o+=n.css,t&&(o+="}"),n.media&&(o+="}"),n.supports&&(o+="}"),(a=n.sourceMap)&&"u">typeof btoa&&(o+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),r.styleTagTransform(o,e,r.options)},remove:function(){var r;null===(r=e).parentNode||r.parentNode.removeChild(r)}}}},113(r){r.exports=function(r,e){if(e.styleSheet)e.styleSheet.cssText=r;else{for(;e.firstChild;)e.removeChild(e.firstChild);e.appendChild(document.createTextNode(r))}}},579(r,e,n){var o=n(72),t=n.n(o),a=n(206),l=n.n(a),i=n(659),s=n.n(i),c=n(56),p=n.n(c),u=n(540),d=n.n(u),b=n(113),m=n.n(b),f=n(475),g={};g.styleTagTransform=m(),g.setAttributes=p(),g.insert=s().bind(null,"head"),g.domAPI=l(),g.insertStyleElement=d(),t()(f.A,g),f.A&&f.A.locals&&f.A.locals}}]);