# Stand-in for the Vivado Tcl commands that fpga/ generates (tclsh 8.6, no Vivado).
# It records the project and block design (cells with VLNV and properties, nets, interface
# nets, address segments, ports, files) and `standin_dump PATH` writes them as JSON.
# A reference to a cell, port or address space that does not exist is an error, as in Vivado.
# Every pin, interface pin, address segment and address space named is recorded with its exact
# spelling ("refs"), so the checker can hold it against the IP's own names (case-sensitive).

namespace eval ::sd {
    variable cells [dict create]
    variable cell_order {}
    variable props [dict create]
    variable nets {}
    variable intf_nets {}
    variable ports [dict create]
    variable addresses {}
    variable files {}
    variable project [dict create]
    variable run_props [dict create]
    variable pin_props [dict create]
    variable flags [dict create]
    variable refs {}
    variable current ""
}

proc ::sd::fail {msg} { return -code error "ERROR: \[standin\] $msg" }

proc ::sd::opts {spec arguments} {
    # Parse "-flag value" options named in spec (flags without value end in "!"), rest positional.
    set out [dict create _ {}]
    for {set i 0} {$i < [llength $arguments]} {incr i} {
        set a [lindex $arguments $i]
        if {[string index $a 0] eq "-" && [lsearch -exact $spec "$a!"] >= 0} {
            dict set out $a 1
        } elseif {[string index $a 0] eq "-" && [lsearch -exact $spec $a] >= 0} {
            incr i
            dict set out $a [lindex $arguments $i]
        } elseif {[string index $a 0] eq "-"} {
            ::sd::fail "unknown option $a"
        } else {
            dict lappend out _ $a
        }
    }
    return $out
}

proc ::sd::abs {name} {
    variable current
    if {[string index $name 0] eq "/"} { return [string range $name 1 end] }
    if {$current eq ""} { return $name }
    return "$current/$name"
}

proc ::sd::need_cell {path} {
    variable cells
    if {![dict exists $cells $path]} { ::sd::fail "no block design cell '$path'" }
}

proc ::sd::owner {pin} {
    set i [string last "/" $pin]
    if {$i < 0} { ::sd::fail "'$pin' is not a cell pin" }
    return [string range $pin 0 [expr {$i - 1}]]
}

# ---- project ---------------------------------------------------------------------------
proc version {args} { return "2022.1" }
proc create_project {args} {
    set o [::sd::opts {-part -force! -in_memory!} $args]
    dict set ::sd::project name [lindex [dict get $o _] 0]
    dict set ::sd::project dir [lindex [dict get $o _] 1]
    dict set ::sd::project part [dict get $o -part]
}
proc current_project {args} { return "project" }
proc current_fileset {args} { return "fileset:sources_1" }
proc get_board_parts {args} { return "" }
proc get_runs {name} { return "run:$name" }
proc update_ip_catalog {args} {}
proc update_compile_order {args} {}
proc add_files {args} {
    set o [::sd::opts {-fileset -norecurse!} $args]
    set fs [expr {[dict exists $o -fileset] ? [dict get $o -fileset] : "sources_1"}]
    foreach group [dict get $o _] { foreach f $group { lappend ::sd::files [list $fs $f] } }
}
proc get_files {pattern} { return $pattern }
proc make_wrapper {args} {
    set o [::sd::opts {-files -top! -import!} $args]
    dict set ::sd::flags wrapper 1
    return "[file rootname [dict get $o -files]]_wrapper.v"
}

# ---- block design ----------------------------------------------------------------------
proc create_bd_design {name} { dict set ::sd::project bd $name }
proc current_bd_instance {args} {
    if {[llength $args] == 0 || [lindex $args 0] eq "."} { return "/$::sd::current" }
    set path [string trim [lindex $args 0] "/"]
    if {$path ne ""} { ::sd::need_cell $path }
    set ::sd::current $path
    return "/$path"
}
proc create_bd_cell {args} {
    set o [::sd::opts {-type -vlnv -reference} $args]
    set path [::sd::abs [lindex [dict get $o _] 0]]
    if {[dict exists $::sd::cells $path]} { ::sd::fail "cell '$path' exists already" }
    if {[string first "/" $path] >= 0} { ::sd::need_cell [::sd::owner $path] }
    set type [dict get $o -type]
    set vlnv [expr {$type eq "ip" ? [dict get $o -vlnv] : ($type eq "module" ? "module_ref:[dict get $o -reference]" : "hier")}]
    dict set ::sd::cells $path [dict create type $type vlnv $vlnv]
    dict set ::sd::props $path [dict create]
    lappend ::sd::cell_order $path
    return "cell:$path"
}
proc get_bd_cells {path} { set p [::sd::abs $path]; ::sd::need_cell $p; return "cell:$p" }
proc get_bd_pins {path} {
    set p [::sd::abs $path]; ::sd::need_cell [::sd::owner $p]; lappend ::sd::refs [list pin $p]; return "pin:$p"
}
proc get_bd_intf_pins {path} {
    set p [::sd::abs $path]; ::sd::need_cell [::sd::owner $p]; lappend ::sd::refs [list intf_pin $p]
    return "intf_pin:$p"
}
proc get_bd_intf_ports {name} {
    if {![dict exists $::sd::ports $name]} { ::sd::fail "no interface port '$name'" }
    return "intf_port:$name"
}
proc get_bd_addr_spaces {path} {
    ::sd::need_cell [::sd::owner $path]; lappend ::sd::refs [list space $path]; return "space:$path"
}
proc get_bd_addr_segs {path} {
    set parts [split $path "/"]
    ::sd::need_cell [join [lrange $parts 0 end-2] "/"]
    lappend ::sd::refs [list segment $path]
    return "seg:$path"
}
proc create_bd_intf_port {args} {
    set o [::sd::opts {-mode -vlnv} $args]
    set name [lindex [dict get $o _] 0]
    dict set ::sd::ports $name [dict create kind intf mode [dict get $o -mode] vlnv [dict get $o -vlnv]]
    return "intf_port:$name"
}
proc set_property {args} {
    if {[lindex $args 0] eq "-dict"} {
        set pairs [lindex $args 1]
        set objects [lindex $args 2]
    } else {
        set pairs [list [lindex $args 0] [lindex $args 1]]
        set objects [lindex $args 2]
    }
    foreach obj $objects {
        set kind [lindex [split $obj ":"] 0]
        set name [join [lrange [split $obj ":"] 1 end] ":"]
        foreach {k v} $pairs {
            switch -- $kind {
                cell { dict set ::sd::props $name $k $v }
                pin { dict set ::sd::pin_props $name $k $v }
                run { dict set ::sd::run_props $name $k $v }
                default { dict set ::sd::project "property:$k" $v }
            }
        }
    }
}
proc connect_bd_net {args} {
    set o [::sd::opts {-net} $args]
    set pins {}
    foreach obj [dict get $o _] {
        if {![string match "pin:*" $obj]} { ::sd::fail "connect_bd_net takes pins, got '$obj'" }
        lappend pins [string range $obj 4 end]
    }
    if {[llength $pins] < 2} { ::sd::fail "net [dict get $o -net] connects fewer than two pins" }
    lappend ::sd::nets [list [dict get $o -net] $pins]
}
proc connect_bd_intf_net {args} {
    set o [::sd::opts {-intf_net} $args]
    set ends [dict get $o _]
    if {[llength $ends] != 2} { ::sd::fail "connect_bd_intf_net needs exactly two ends" }
    foreach obj $ends {
        if {![string match "intf_*" $obj]} { ::sd::fail "connect_bd_intf_net takes interface pins or ports, got '$obj'" }
    }
    lappend ::sd::intf_nets $ends
}
proc assign_bd_address {args} {
    set o [::sd::opts {-offset -range -target_address_space -force!} $args]
    set space [string range [dict get $o -target_address_space] 6 end]
    set seg [string range [lindex [dict get $o _] 0] 4 end]
    lappend ::sd::addresses [list $space $seg [dict get $o -offset] [dict get $o -range]]
}
proc validate_bd_design {args} { dict set ::sd::flags validated 1 }
proc save_bd_design {args} { dict set ::sd::flags saved 1 }

# ---- JSON output -----------------------------------------------------------------------
proc ::sd::str {s} {
    return "\"[string map {\\ \\\\ \" \\\" \n \\n \t \\t} $s]\""
}
proc ::sd::obj {d} {
    set items {}
    dict for {k v} $d { lappend items "[::sd::str $k]: [::sd::str $v]" }
    return "{[join $items ", "]}"
}
proc ::sd::arr {items} { return "\[[join $items ", "]\]" }

proc standin_dump {path} {
    set cells {}
    foreach c $::sd::cell_order {
        set d [dict get $::sd::cells $c]
        lappend cells "[::sd::str $c]: {\"type\": [::sd::str [dict get $d type]], \"vlnv\": [::sd::str [dict get $d vlnv]], \"config\": [::sd::obj [dict get $::sd::props $c]]}"
    }
    set nets {}
    foreach n $::sd::nets {
        set pins {}
        foreach p [lindex $n 1] { lappend pins [::sd::str $p] }
        lappend nets "{\"name\": [::sd::str [lindex $n 0]], \"pins\": [::sd::arr $pins]}"
    }
    set inets {}
    foreach n $::sd::intf_nets {
        set ends {}
        foreach e $n { lappend ends [::sd::str $e] }
        lappend inets [::sd::arr $ends]
    }
    set ports {}
    dict for {name d} $::sd::ports { lappend ports "[::sd::str $name]: [::sd::obj $d]" }
    set addrs {}
    foreach a $::sd::addresses {
        lappend addrs "{\"space\": [::sd::str [lindex $a 0]], \"segment\": [::sd::str [lindex $a 1]], \"offset\": [::sd::str [lindex $a 2]], \"range\": [::sd::str [lindex $a 3]]}"
    }
    set files {}
    foreach f $::sd::files { lappend files "{\"fileset\": [::sd::str [lindex $f 0]], \"path\": [::sd::str [lindex $f 1]]}" }
    set pinprops {}
    dict for {pin d} $::sd::pin_props { lappend pinprops "[::sd::str $pin]: [::sd::obj $d]" }
    set runprops {}
    dict for {run d} $::sd::run_props { lappend runprops "[::sd::str $run]: [::sd::obj $d]" }
    set refs {}
    foreach r $::sd::refs { lappend refs "{\"kind\": [::sd::str [lindex $r 0]], \"path\": [::sd::str [lindex $r 1]]}" }
    set fh [open $path w]
    puts $fh "{\"project\": [::sd::obj $::sd::project],"
    puts $fh " \"flags\": [::sd::obj $::sd::flags],"
    puts $fh " \"cells\": {[join $cells ",\n  "]},"
    puts $fh " \"pin_properties\": {[join $pinprops ", "]},"
    puts $fh " \"run_properties\": {[join $runprops ", "]},"
    puts $fh " \"nets\": [::sd::arr $nets],"
    puts $fh " \"intf_nets\": [::sd::arr $inets],"
    puts $fh " \"ports\": {[join $ports ", "]},"
    puts $fh " \"addresses\": [::sd::arr $addrs],"
    puts $fh " \"refs\": [::sd::arr $refs],"
    puts $fh " \"files\": [::sd::arr $files]}"
    close $fh
}
