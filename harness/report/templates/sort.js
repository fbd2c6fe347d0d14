/* Click a header of a table.sortable to sort by it; numeric cells sort by data-v,
   empty values last; a second click reverses. */
document.querySelectorAll("table.sortable").forEach(function(table){
  var heads=table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads,function(th,col){
    th.addEventListener("click",function(){
      var asc=th.getAttribute("data-dir")!=="asc", num=th.classList.contains("num");
      Array.prototype.forEach.call(heads,function(h){h.removeAttribute("data-dir");});
      th.setAttribute("data-dir",asc?"asc":"desc");
      var body=table.tBodies[0], rows=Array.prototype.slice.call(body.rows);
      function key(row){var c=row.cells[col];var v=c.hasAttribute("data-v")?c.getAttribute("data-v"):c.textContent;
        return num?parseFloat(v):v;}
      rows.sort(function(a,b){var x=key(a),y=key(b);
        if(num){if(isNaN(x))return isNaN(y)?0:1;if(isNaN(y))return -1;return asc?x-y:y-x;}
        return asc?x.localeCompare(y):y.localeCompare(x);});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
