# An interpreter workload in Perl: hashes of arrays, records as hashes,
# regex substitution, sorting and joining; a seeded generator, so the
# output line must not depend on the allocator (run with PERL_HASH_SEED=0).
use strict; use warnings;
my $seed = 12345;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed; }
my @words = map { my $w = ''; $w .= chr(97 + rnd() % 26) for 1 .. 3 + rnd() % 9; $w } 1 .. 5000;
my (%count, %index, @records);
for my $i (1 .. 250000) {
    my @f = map { $words[rnd() % @words] } 1 .. 2 + rnd() % 8;
    my $line = join(' ', @f);
    push @records, { id => $i, text => $line, n => scalar(@f), key => $f[0] . '-' . $f[-1] };
    $count{$_}++ for @f;
    push @{ $index{ $f[0] } }, $i;
}
my $total = 0;
for my $r (@records) {
    (my $t = $r->{text}) =~ s/([aeiou])/uc $1/ge;
    $r->{upper} = $t;
    $total += length($t) if $t =~ /^[A-Za-z]+ [A-Z]/;
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 9];
my @bykey = sort { $a->{key} cmp $b->{key} || $a->{id} <=> $b->{id} } @records;
my $joined = join("\n", map { "$_->{id}:$_->{upper}" } @bykey[0 .. 49999]);
my %seen; my @uniq = grep { !$seen{$_}++ } map { $_->{key} } @records;
print join(',', @top), " $total ", length($joined), ' ', scalar(@uniq), ' ', scalar(keys %index), "\n";
